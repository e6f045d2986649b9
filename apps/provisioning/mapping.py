"""Directory objects + a connector's mappings -> SCIM resources, and the PATCH between two of them.

Pure functions: no database, no HTTP.
"""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from apps.connectors.attributes import ENTERPRISE_USER_URN, ENTRY_LIST_TARGETS, parse_scim_path, render_source
from apps.connectors.properties import user_values

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class MappingFailure(ValueError):
    """The mappings cannot produce a valid resource for this object (a permanent failure)."""


def user_properties(
    user: Any, group_names: Iterable[str] = (), mappings: Iterable[tuple[str, str]] = (), *, manager_app_id: str = ""
) -> dict[str, Any]:
    """The values of the properties the mappings read (apps.connectors.properties); `manager_app_id`
    is the manager's id in this connector's app, empty while the manager is not linked there."""
    sources = [source for source, _ in mappings]
    return user_values(user, sources, groups=group_names, manager_app_id=manager_app_id)


def group_properties(group: Any) -> dict[str, Any]:
    return {
        "id": str(group.pk),
        "name": group.name,
        "description": group.description,
        "external_id": group.external_id,
    }


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _filter_fields(value_filter: str) -> dict[str, Any]:
    """`type eq "work"` -> {"type": "work"}: the fields that identify the entry a path writes to."""
    if not value_filter:
        return {}
    attribute, operator, raw = value_filter.split(None, 2)
    if operator.lower() != "eq":
        raise MappingFailure(f"Only eq filters can select where to write ({value_filter}).")
    return {attribute: json.loads(raw)}


def _set_path(resource: dict, target: str, value: Any) -> None:
    path = parse_scim_path(target)
    container = resource
    if path.urn:
        container = resource.setdefault(path.urn, {})
    attribute = path.attribute
    if path.value_filter or (path.sub_attribute and isinstance(container.get(attribute), list)):
        selector = _filter_fields(path.value_filter)
        entries = container.setdefault(attribute, [])
        entry = next((item for item in entries if all(item.get(k) == v for k, v in selector.items())), None)
        if entry is None:
            entry = dict(selector)
            if attribute == "emails" and not any(item.get("primary") for item in entries):
                entry["primary"] = True
            entries.append(entry)
        entry[path.sub_attribute or "value"] = value
    elif path.sub_attribute:
        container.setdefault(attribute, {})[path.sub_attribute] = value
    else:
        container[attribute] = value


def _schemas(resource: dict, core: str) -> list[str]:
    return [core, *sorted(key for key in resource if key.startswith("urn:"))]


def _add_entries(resource: dict, target: str, entries: list[dict]) -> None:
    """A whole list of entries (secondary emails, phone numbers...) after what single paths wrote.

    The entries a path such as emails[type eq "work"].value wrote keep their place and their
    primary flag: an entry of the list with the same value is left out, and a list entry is primary
    only when no entry already is (RFC 7643: at most one)."""
    attribute = parse_scim_path(target).attribute
    existing = resource.setdefault(attribute, [])
    has_primary = any(item.get("primary") for item in existing)
    values = {item.get("value") for item in existing if "value" in item}
    for entry in entries:
        if "value" in entry and entry["value"] in values:
            continue
        entry = dict(entry)
        if has_primary:
            entry.pop("primary", None)
        has_primary = has_primary or bool(entry.get("primary"))
        existing.append(entry)


def build_user_resource(properties: dict[str, Any], mappings: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The SCIM User the app should hold. Empty values are left out (no email entry without an email)."""
    resource: dict[str, Any] = {}
    entry_lists: list[tuple[str, list[dict]]] = []
    for source, target in mappings:
        value = render_source(source, properties)
        if _is_empty(value):
            continue
        if source in ENTRY_LIST_TARGETS:
            entry_lists.append((target, value))
            continue
        _set_path(resource, target, value)
    for target, entries in entry_lists:
        _add_entries(resource, target, entries)
    if not resource.get("userName"):
        raise MappingFailure("The userName mapping gives an empty value for this user.")
    return {"schemas": _schemas(resource, USER_SCHEMA), **resource}


def build_group_resource(
    properties: dict[str, Any], mappings: Iterable[tuple[str, str]], member_remote_ids: Iterable[str]
) -> dict[str, Any]:
    resource: dict[str, Any] = {}
    for source, target in mappings:
        if source == "members":
            continue  # members are sent as remote ids, as a delta, by the engine
        value = render_source(source, properties)
        if not _is_empty(value):
            _set_path(resource, target, value)
    if not resource.get("displayName"):
        raise MappingFailure("The displayName mapping gives an empty value for this group.")
    members = [{"value": remote_id} for remote_id in sorted(member_remote_ids)]
    if members:
        resource["members"] = members
    return {"schemas": _schemas(resource, GROUP_SCHEMA), **resource}


def resource_hash(resource: dict[str, Any]) -> str:
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def changed_attributes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    old = old or {}
    keys = (set(old) | set(new)) - {"schemas", "members"}
    return sorted(key for key in keys if old.get(key) != new.get(key))


def patch_operations(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace what changed and remove what is gone, attribute by attribute (members excluded)."""
    old = old or {}
    operations: list[dict[str, Any]] = []
    for key in changed_attributes(old, new):
        if key in new:
            if isinstance(new[key], dict) and isinstance(old.get(key), dict) and key.startswith("urn:"):
                for sub_key in sorted(set(old[key]) | set(new[key])):
                    if old[key].get(sub_key) == new[key].get(sub_key):
                        continue
                    if sub_key in new[key]:
                        operations.append({"op": "replace", "path": f"{key}:{sub_key}", "value": new[key][sub_key]})
                    else:
                        operations.append({"op": "remove", "path": f"{key}:{sub_key}"})
            else:
                operations.append({"op": "replace", "path": key, "value": new[key]})
        else:
            operations.append({"op": "remove", "path": key})
    return operations


def patch_request(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


def member_operations(added: Iterable[str], removed: Iterable[str]) -> list[dict[str, Any]]:
    """PATCH operations for a membership delta, by remote id; never the whole member list."""
    operations: list[dict[str, Any]] = []
    added = sorted(added)
    if added:
        operations.append({"op": "add", "path": "members", "value": [{"value": remote_id} for remote_id in added]})
    operations.extend({"op": "remove", "path": f'members[value eq "{remote_id}"]'} for remote_id in sorted(removed))
    return operations


def mapping_pairs(mappings: Iterable[Any]) -> list[tuple[str, str]]:
    return [(mapping.source, mapping.target) for mapping in mappings]


def display_name_of(resource: dict[str, Any]) -> str:
    return str(resource.get("displayName", ""))


def user_name_of(resource: dict[str, Any]) -> str:
    return str(resource.get("userName", ""))


def external_id_of(resource: dict[str, Any]) -> str:
    return str(resource.get("externalId", ""))


def enterprise(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get(ENTERPRISE_USER_URN, {})
