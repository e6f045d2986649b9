"""SCIM list parameters and attribute selection (RFC 7644 §3.4.2): parsed once, applied to documents."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.scim_server import filter_syntax
from apps.scim_server.errors import ScimError, invalid_value
from apps.scim_server.patch import ResourceSchema


@dataclass(frozen=True)
class ListParams:
    filter: str | None
    start_index: int
    count: int
    sort_by: str | None
    descending: bool
    attributes: tuple[str, ...]
    excluded: tuple[str, ...]


def _integer(raw: Any, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise invalid_value(f"{name} must be an integer.")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise invalid_value(f"{name} must be an integer.") from None


def _names(raw: Any, name: str) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, list):
        items = raw
    elif isinstance(raw, str):
        items = raw.split(",")
    else:
        raise invalid_value(f"{name} must be a comma-separated list of attribute names.")
    if len(items) > 100 or not all(isinstance(item, str) for item in items):
        raise invalid_value(f"{name} must be a list of at most 100 attribute names.")
    return tuple(item.strip() for item in items if item.strip())


def list_params(source: Mapping[str, Any]) -> ListParams:
    """Read list parameters from a query string or a SearchRequest body (names case-insensitive)."""
    values = {str(key).lower(): value for key, value in source.items()}
    start = _integer(values.get("startindex"), "startIndex")
    count = _integer(values.get("count"), "count")
    # Past any real directory's size, and within what every database's OFFSET accepts.
    start = 1 if start is None or start < 1 else min(start, 1_000_000_000)
    if count is None:
        count = settings.SCIM_DEFAULT_PAGE_SIZE
    count = max(0, min(count, settings.SCIM_MAX_PAGE_SIZE))
    order = values.get("sortorder") or "ascending"
    if not isinstance(order, str) or order.lower() not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be ascending or descending.")
    query_filter = values.get("filter")
    if query_filter is not None and not isinstance(query_filter, str):
        raise ScimError(400, "filter must be a string.", "invalidFilter")
    sort_by = values.get("sortby")
    if sort_by is not None and not isinstance(sort_by, str):
        raise invalid_value("sortBy must be an attribute name.")
    return ListParams(
        filter=query_filter if query_filter not in (None, "") else None,
        start_index=start,
        count=count,
        sort_by=sort_by or None,
        descending=order.lower() == "descending",
        attributes=_names(values.get("attributes"), "attributes"),
        excluded=_names(values.get("excludedattributes"), "excludedAttributes"),
    )


# --- Attribute selection (RFC 7644 §3.4.2.5) ---------------------------------------------------


@dataclass(frozen=True)
class Projection:
    attributes: tuple[tuple[str | None, str, str | None], ...]
    excluded: tuple[tuple[str | None, str, str | None], ...]

    def wants(self, uri: str | None, attr: str) -> bool:
        """Whether a top-level attribute ends up in the response (to skip loading it)."""
        if any(item[0] == uri and item[1] == attr and item[2] is None for item in self.excluded):
            return False
        if self.attributes:
            return any(item[0] == uri and item[1] == attr for item in self.attributes)
        return True

    @property
    def request_only(self) -> frozenset[str]:
        return frozenset(f"{attr}.{sub}" for uri, attr, sub in self.attributes if sub and uri is None)


# Every attribute: what a write answers with.
NO_SELECTION = Projection((), ())


def projection(params: ListParams, schema: ResourceSchema) -> Projection:
    def parse(names: tuple[str, ...]) -> tuple:
        items = []
        for name in names:
            extension = schema.extension_uri(name)
            if extension is not None:
                items.append((extension, "*", None))
                continue
            try:
                path = filter_syntax.parse_attr_path(name, schema.known_uris)
            except ScimError:
                raise invalid_value(f"Invalid attribute name {name[:80]!r}.") from None
            uri = None if path.uri in (None, schema.core_uri) else path.uri
            items.append((uri, path.attr, path.sub))
        return tuple(items)

    return Projection(parse(params.attributes), parse(params.excluded))


def _find(container: dict, name: str) -> str | None:
    for key in container:
        if key.lower() == name:
            return key
    return None


def project(document: dict, selection: Projection) -> dict:
    if not selection.attributes and not selection.excluded:
        return document
    if selection.attributes:
        result = {"schemas": document["schemas"], "id": document["id"]}
        for uri, attr, sub in selection.attributes:
            source = document if uri is None else document.get(uri)
            if not isinstance(source, dict):
                continue
            target = result if uri is None else result.setdefault(uri, {})
            if attr == "*":
                target.update(source)
                continue
            key = _find(source, attr)
            if key is None:
                continue
            value = source[key]
            if sub is None:
                target[key] = value
            elif isinstance(value, list):
                picked = [
                    {k: v for k, v in element.items() if k.lower() == sub}
                    for element in value
                    if isinstance(element, dict)
                ]
                existing = target.get(key)
                if isinstance(existing, list) and len(existing) == len(picked):
                    for into, extra in zip(existing, picked, strict=True):
                        into.update(extra)
                else:
                    target[key] = [element for element in picked if element]
            elif isinstance(value, dict):
                sub_key = _find(value, sub)
                if sub_key is not None:
                    target.setdefault(key, {})[sub_key] = value[sub_key]
        for key in list(result):
            if isinstance(result[key], dict | list) and not result[key]:
                del result[key]
        document = result
    for uri, attr, sub in selection.excluded:
        source = document if uri is None else document.get(uri)
        if not isinstance(source, dict):
            continue
        if attr == "*":
            document.pop(uri, None)
            continue
        if uri is None and attr in ("id", "schemas"):
            continue
        key = _find(source, attr)
        if key is None:
            continue
        if sub is None:
            del source[key]
        elif isinstance(source[key], list):
            for element in source[key]:
                if isinstance(element, dict):
                    sub_key = _find(element, sub)
                    if sub_key is not None:
                        del element[sub_key]
        elif isinstance(source[key], dict):
            sub_key = _find(source[key], sub)
            if sub_key is not None:
                del source[key][sub_key]
    return document
