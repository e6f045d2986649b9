"""PATCH (RFC 7644 §3.5.2) applied to a resource's SCIM document.

The operations change a copy of the document the resource renders to; the adapter then reads the
changed document back, exactly as it reads a PUT, and only what differs is written. Paths may name
an attribute, a sub-attribute, a value filter (`members[value eq "..."]`), a sub-attribute of the
filtered values (`emails[type eq "work"].value`), or a whole extension by its URN. Operation names
are case-insensitive and paths with no `path` take a dict of paths (as Entra ID sends them).
"""

import copy
from dataclasses import dataclass
from typing import Any

from apps.scim_server.errors import ScimError, invalid_path, invalid_syntax, invalid_value, mutability, no_target
from apps.scim_server.filter_syntax import (
    And,
    AttrPath,
    Compare,
    Node,
    parse_attr_path,
    parse_value_filter,
    value_matches,
)
from apps.scim_server.schemas import COMMON_ATTRIBUTES, AttributeDef

MAX_OPERATIONS = 1000
VALID_OPS = ("add", "remove", "replace")


@dataclass(frozen=True)
class ResourceSchema:
    core_uri: str
    core: dict[str, AttributeDef]
    extensions: dict[str, dict[str, AttributeDef]]
    # Sub-attributes of multi-valued attributes that identify a value, for de-duplication on add.
    identity_key: str = "value"

    @property
    def known_uris(self) -> tuple[str, ...]:
        return (self.core_uri, *self.extensions)

    def extension_uri(self, name: str) -> str | None:
        for uri in self.extensions:
            if uri.lower() == name.lower():
                return uri
        return None


@dataclass(frozen=True)
class Target:
    uri: str | None  # an extension URN, or None for the core schema
    attribute: AttributeDef | None  # None: the whole extension
    value_filter: Node | None = None
    sub: AttributeDef | None = None

    @property
    def label(self) -> str:
        text = self.attribute.name if self.attribute else ""
        if self.value_filter is not None:
            text += "[...]"
        if self.sub is not None:
            text += f".{self.sub.name}"
        return f"{self.uri}:{text}" if self.uri else text


def _get(container: dict, name: str) -> tuple[str | None, Any]:
    for key, value in container.items():
        if key.lower() == name.lower():
            return key, value
    return None, None


def _set(container: dict, name: str, value: Any) -> None:
    key, _ = _get(container, name)
    if key is not None and key != name:
        del container[key]
    container[name] = value


def _delete(container: dict, name: str) -> None:
    key, _ = _get(container, name)
    if key is not None:
        del container[key]


def parse_path(text: str, schema: ResourceSchema) -> Target:
    if not isinstance(text, str) or not text.strip():
        raise invalid_path("The operation's path is empty.")
    text = text.strip()
    extension = schema.extension_uri(text)
    if extension is not None:
        return Target(extension, None)
    value_filter = None
    sub_after = None
    if "[" in text:
        head, _, rest = text.partition("[")
        inner, closing, tail = rest.rpartition("]")
        if not closing:
            raise invalid_path(f"Unbalanced brackets in path {text[:80]!r}.")
        try:
            value_filter = parse_value_filter(inner, schema.known_uris)
        except ScimError as exc:
            raise invalid_path(f"Invalid value filter in path: {exc.detail}") from None
        if tail:
            if not tail.startswith(".") or "." in tail[1:] or "[" in tail:
                raise invalid_path(f"Invalid path {text[:80]!r}.")
            sub_after = tail[1:]
        text = head
    try:
        path = parse_attr_path(text, schema.known_uris)
    except ScimError:
        raise invalid_path(f"Invalid path {text[:80]!r}.") from None
    if value_filter is not None and path.sub is not None:
        raise invalid_path(f"Invalid path {text[:80]!r}.")
    return _resolve(path, sub_after, value_filter, schema)


def _resolve(path: AttrPath, sub_after: str | None, value_filter: Node | None, schema: ResourceSchema) -> Target:
    uri = None if path.uri in (None, schema.core_uri) else path.uri
    attributes = schema.extensions[uri] if uri else {**schema.core, **COMMON_ATTRIBUTES}
    attribute = attributes.get(path.attr)
    if attribute is None and uri is None and path.attr == "password":
        raise mutability("Writing passwords over SCIM is disabled on this server.")
    if attribute is None:
        raise invalid_path(f"Unknown attribute {path}.")
    if attribute.mutability == "readOnly":
        raise mutability(f"{attribute.name} is read-only.")
    sub_name = path.sub or sub_after
    sub = None
    if sub_name is not None:
        sub = attribute.sub_attributes.get(sub_name.lower())
        if sub is None:
            raise invalid_path(f"Unknown attribute {path.attr}.{sub_name}.")
    if value_filter is not None and not attribute.multi_valued:
        raise invalid_path(f"{attribute.name} is not multi-valued; a value filter cannot apply to it.")
    return Target(uri, attribute, value_filter, sub)


def _check_mutability(target: Target, op: str, writable_password: bool) -> None:
    attribute = target.attribute
    if attribute is None:
        return
    if attribute.mutability == "readOnly" or (target.sub is not None and target.sub.mutability == "readOnly"):
        raise mutability(f"{target.label} is read-only.")
    if attribute.name == "password":
        if not writable_password:
            raise mutability("Writing passwords over SCIM is disabled on this server.")
        if op == "remove":
            raise mutability("A password cannot be removed over SCIM.")
    if op == "remove" and attribute.required and target.sub is None and target.value_filter is None:
        raise invalid_value(f"{attribute.name} is required and cannot be removed.")
    if target.sub is not None and target.sub.mutability == "immutable" and op == "replace":
        raise mutability(f"{target.label} is immutable.")


def _container(document: dict, target: Target, create: bool) -> dict | None:
    if target.uri is None:
        return document
    _key, extension = _get(document, target.uri)
    if extension is None:
        if not create:
            return None
        extension = {}
        document[target.uri] = extension
    if not isinstance(extension, dict):
        raise invalid_value(f"{target.uri} must be an object.")
    return extension


def _as_list(value: Any, label: str) -> list:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]


def _filter_template(node: Node) -> dict | None:
    """`type eq "work"` (or several joined by `and`) as the value a new element should have."""
    terms = node.terms if isinstance(node, And) else (node,)
    template = {}
    for term in terms:
        if not isinstance(term, Compare) or term.op != "eq" or term.path.sub or term.path.uri:
            return None
        template[term.path.attr] = term.value
    return template


def _canonical_sub_names(attribute: AttributeDef, element: dict) -> dict:
    names = {sub.name.lower(): sub.name for sub in attribute.sub_attributes.values()}
    return {names.get(key.lower(), key): value for key, value in element.items()}


def _identity(element: Any, key: str) -> Any:
    if isinstance(element, dict):
        _, value = _get(element, key)
        return str(value).lower() if value is not None else None
    return element


def _add_values(current: list, new_values: list, identity_key: str) -> list:
    seen = {_identity(element, identity_key) for element in current}
    result = list(current)
    for element in new_values:
        identity = _identity(element, identity_key)
        if identity is not None and identity in seen:
            continue
        seen.add(identity)
        result.append(element)
    return result


def apply_operation(document: dict, operation: Any, schema: ResourceSchema, *, writable_password: bool) -> None:
    if not isinstance(operation, dict):
        raise invalid_syntax("Each operation must be an object.")
    _, op = _get(operation, "op")
    if not isinstance(op, str) or op.lower() not in VALID_OPS:
        raise invalid_syntax(f"Unknown PATCH op {str(op)[:20]!r}; use add, remove or replace.")
    op = op.lower()
    _, path = _get(operation, "path")
    has_value, value = (_get(operation, "value")[0] is not None), _get(operation, "value")[1]
    if path is None or path == "":
        if op == "remove":
            raise no_target("A remove operation needs a path.")
        if not isinstance(value, dict):
            raise invalid_value("An operation without a path needs an object value.")
        for key, item in value.items():
            if key.lower() == "schemas":
                continue
            apply_operation(
                document, {"op": op, "path": key, "value": item}, schema, writable_password=writable_password
            )
        return
    if op != "remove" and not has_value:
        raise invalid_value(f"The {op} operation on {str(path)[:80]!r} needs a value.")
    target = parse_path(path, schema)
    _check_mutability(target, op, writable_password)
    if target.attribute is None:
        _apply_to_extension(document, target, op, value)
        return
    container = _container(document, target, create=op != "remove")
    if container is None:
        return
    attribute = target.attribute
    value = _single_valued_shorthand(attribute, target, value)
    primaries_before = _primaries(container, attribute)
    if target.value_filter is None and target.sub is None:
        _apply_to_attribute(container, attribute, op, value, schema)
    elif target.value_filter is None:
        _apply_to_sub_attribute(container, attribute, target.sub, op, value)
    else:
        _apply_to_filtered(container, target, op, value)
    if op != "remove":
        _keep_one_primary(container, attribute, primaries_before)
    if target.uri is not None and not container:
        _delete(document, target.uri)


def _single_valued_shorthand(attribute: AttributeDef, target: Target, value: Any) -> Any:
    """A bare value for a single-valued complex attribute with a `value` sub-attribute is that
    sub-attribute: Entra ID sets the manager as `{"path": "...:manager", "value": "<id>"}`."""
    if (
        attribute.type == "complex"
        and not attribute.multi_valued
        and target.sub is None
        and isinstance(value, str)
        and "value" in attribute.sub_attributes
    ):
        return {"value": value}
    return value


def _primaries(container: dict, attribute: AttributeDef) -> list[int]:
    """ids of the values marked primary, for a multi-valued attribute that has `primary`."""
    if not attribute.multi_valued or "primary" not in attribute.sub_attributes:
        return []
    _, current = _get(container, attribute.name)
    elements = current if isinstance(current, list) else []
    return [id(element) for element in elements if isinstance(element, dict) and _is_true(_get(element, "primary")[1])]


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _keep_one_primary(container: dict, attribute: AttributeDef, before: list[int]) -> None:
    """RFC 7644 §3.5.2: an operation that makes a value primary makes the others not primary. (Two
    new primaries in one operation stay, and the document is refused as a whole.)"""
    if not attribute.multi_valued or "primary" not in attribute.sub_attributes:
        return
    _, current = _get(container, attribute.name)
    elements = [element for element in current if isinstance(element, dict)] if isinstance(current, list) else []
    primary = [element for element in elements if _is_true(_get(element, "primary")[1])]
    if not any(id(element) not in before for element in primary):
        return
    for element in primary:
        if id(element) in before:
            _set(element, "primary", False)


def _apply_to_extension(document: dict, target: Target, op: str, value: Any) -> None:
    if op == "remove":
        _delete(document, target.uri)
        return
    if not isinstance(value, dict):
        raise invalid_value(f"{target.uri} takes an object.")
    container = _container(document, target, create=True)
    for key, item in value.items():
        if key.lower() != "schemas":
            _set(container, key, item)


def _apply_to_attribute(container: dict, attribute: AttributeDef, op: str, value: Any, schema: ResourceSchema) -> None:
    name = attribute.name
    _, current = _get(container, name)
    if op == "remove":
        if attribute.multi_valued and value is not None and isinstance(current, list):
            # Entra ID removes members as {"op": "Remove", "path": "members", "value": [{"value": id}]}:
            # only the values given go, not the whole attribute.
            gone = {_identity(element, schema.identity_key) for element in _as_list(value, name)}
            kept = [element for element in current if _identity(element, schema.identity_key) not in gone]
            _set(container, name, kept)
            return
        _delete(container, name)
        return
    if attribute.multi_valued:
        new_values = _as_list(value, name)
        if attribute.type == "complex":
            if not all(isinstance(element, dict) for element in new_values):
                raise invalid_value(f"Each value of {name} must be an object.")
            new_values = [_canonical_sub_names(attribute, element) for element in new_values]
        if op == "add" and isinstance(current, list):
            _set(container, name, _add_values(current, new_values, schema.identity_key))
        else:
            _set(container, name, new_values)
    elif attribute.type == "complex":
        if not isinstance(value, dict):
            raise invalid_value(f"{name} takes an object.")
        merged = dict(current) if isinstance(current, dict) else {}
        given = _canonical_sub_names(attribute, value)
        if {"value", "$ref"} <= set(attribute.sub_attributes):
            # `value` and `$ref` name one resource (a manager): a new one replaces both.
            for stale in {"value", "$ref"} - set(given):
                if {"value", "$ref"} & set(given):
                    _delete(merged, stale)
        for key, item in given.items():
            _set(merged, key, item)
        _set(container, name, merged)
    else:
        _set(container, name, value)


def _apply_to_sub_attribute(container: dict, attribute: AttributeDef, sub: AttributeDef, op: str, value: Any) -> None:
    name = attribute.name
    _, current = _get(container, name)
    if attribute.multi_valued:
        elements = [element for element in _as_list(current, name) if isinstance(element, dict)]
        if op == "remove":
            for element in elements:
                _delete(element, sub.name)
            _set(container, name, [element for element in elements if element])
            return
        if not elements:
            elements = [{}]
        for element in elements:
            _set(element, sub.name, value)
        _set(container, name, elements)
        return
    complex_value = dict(current) if isinstance(current, dict) else {}
    if op == "remove":
        _delete(complex_value, sub.name)
    else:
        _set(complex_value, sub.name, value)
    if complex_value:
        _set(container, name, complex_value)
    else:
        _delete(container, name)


def _apply_to_filtered(container: dict, target: Target, op: str, value: Any) -> None:
    attribute = target.attribute
    name = attribute.name
    _, current = _get(container, name)
    elements = [element for element in _as_list(current, name) if isinstance(element, dict)]

    def case_exact(sub_name: str) -> bool:
        sub = attribute.sub_attributes.get(sub_name.lower())
        return bool(sub and sub.case_exact)

    matched = [
        index for index, element in enumerate(elements) if value_matches(target.value_filter, element, case_exact)
    ]
    if op == "remove":
        if target.sub is None:
            elements = [element for index, element in enumerate(elements) if index not in set(matched)]
        else:
            for index in matched:
                _delete(elements[index], target.sub.name)
            elements = [element for element in elements if element]
        if elements:
            _set(container, name, elements)
        else:
            _delete(container, name)
        return
    if not matched:
        # `add`, or setting a sub-attribute (`emails[type eq "work"].value`, as Entra ID sends it),
        # creates the value the filter describes; replacing a whole value that is not there cannot.
        template = _filter_template(target.value_filter) if op == "add" or target.sub is not None else None
        if template is None:
            raise no_target(f"No value of {name} matches the filter in the path.")
        new_element = _canonical_sub_names(attribute, template)
        if target.sub is not None:
            _set(new_element, target.sub.name, value)
        elif isinstance(value, dict):
            new_element.update(_canonical_sub_names(attribute, value))
        else:
            raise invalid_value(f"Values of {name} are objects.")
        elements.append(new_element)
    for index in matched:
        if target.sub is not None:
            _set(elements[index], target.sub.name, value)
        elif isinstance(value, dict):
            if op == "replace":
                elements[index] = _canonical_sub_names(attribute, value)
            else:
                elements[index].update(_canonical_sub_names(attribute, value))
        else:
            raise invalid_value(f"Values of {name} are objects.")
    _set(container, name, elements)


def apply_patch(document: dict, body: Any, schema: ResourceSchema, *, writable_password: bool) -> dict:
    """Return a changed copy of `document`; raise a ScimError for an invalid request."""
    if not isinstance(body, dict):
        raise invalid_syntax("The PATCH body must be a JSON object.")
    _, schemas = _get(body, "schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or "urn:ietf:params:scim:api:messages:2.0:PatchOp" not in schemas
    ):
        raise invalid_syntax("The PATCH body's schemas must list urn:ietf:params:scim:api:messages:2.0:PatchOp.")
    _, operations = _get(body, "Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("The PATCH body needs a non-empty Operations list.")
    if len(operations) > MAX_OPERATIONS:
        raise invalid_value(f"At most {MAX_OPERATIONS} operations per PATCH.")
    changed = copy.deepcopy(document)
    for operation in operations:
        apply_operation(changed, operation, schema, writable_password=writable_password)
    return changed
