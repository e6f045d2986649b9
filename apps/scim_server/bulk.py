"""/Bulk (RFC 7644 §3.7): operations run one by one through the same code as single requests.

`bulkId:<id>` references in paths and values resolve to the ids of resources created earlier in the
same request; an operation waits until what it references exists (so order does not matter), and
one whose references never resolve fails with 409. `failOnErrors` stops after that many errors.
"""

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from apps.scim_server import group_resources, user_resources
from apps.scim_server.errors import ScimError, invalid_syntax, invalid_value, too_large
from apps.scim_server.models import ScimToken
from apps.scim_server.patch import _get
from apps.scim_server.schemas import BULK_REQUEST, BULK_RESPONSE

_PATH = re.compile(r"^/(Users|Groups)(?:/([^/]+))?$", re.IGNORECASE)
_BULK_REF = re.compile(r"^bulkId:(.+)$")
_PATH_REF = re.compile(r"^/(?:Users|Groups)/bulkId:(.+)$", re.IGNORECASE)


def _path_references(path: Any) -> set[str]:
    match = _PATH_REF.match(path) if isinstance(path, str) else None
    return {match.group(1)} if match else set()


def _substitute_path(path: Any, created: dict[str, str]) -> Any:
    match = _PATH_REF.match(path) if isinstance(path, str) else None
    if match and match.group(1) in created:
        return path[: match.start(1) - len("bulkId:")] + created[match.group(1)]
    return path


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            match = _BULK_REF.match(item)
            if match:
                found.add(match.group(1))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _substitute(value: Any, created: dict[str, str]) -> Any:
    if isinstance(value, str):
        match = _BULK_REF.match(value)
        return created.get(match.group(1), value) if match else value
    if isinstance(value, dict):
        return {key: _substitute(item, created) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, created) for item in value]
    return value


def _run(token: ScimToken, request: HttpRequest | None, method: str, path: str, data: Any, version: str | None):
    match = _PATH.match(path or "")
    if not match:
        raise invalid_value(f"Invalid bulk path {str(path)[:80]!r}.")
    kind, resource_id = match.group(1).lower(), match.group(2)
    users = kind == "users"
    if method == "POST":
        if resource_id:
            raise invalid_value("POST takes a collection path such as /Users.")
        return (user_resources.user_create if users else group_resources.group_create)(token, request, data)
    if not resource_id:
        raise invalid_value(f"{method} needs a resource path such as /{match.group(1)}/<id>.")
    if method == "PUT":
        return (user_resources.user_replace if users else group_resources.group_replace)(
            token, request, resource_id, data, version
        )
    if method == "PATCH":
        return (user_resources.user_patch if users else group_resources.group_patch)(
            token, request, resource_id, data, version
        )
    if method == "DELETE":
        return (user_resources.user_delete if users else group_resources.group_delete)(
            token, request, resource_id, version
        )
    raise invalid_value(f"Unsupported bulk method {method[:10]!r}.")


def operation_count(body: Any) -> int:
    """How many operations a BulkRequest carries (0 when it is malformed; run_bulk says why)."""
    if not isinstance(body, dict):
        return 0
    _, operations = _get(body, "Operations")
    return len(operations) if isinstance(operations, list) else 0


def run_bulk(token: ScimToken, request: HttpRequest | None, body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid_syntax("A BulkRequest must be a JSON object.")
    _, schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
        raise invalid_syntax(f"schemas must list {BULK_REQUEST}.")
    _, operations = _get(body, "Operations")
    if not isinstance(operations, list):
        raise invalid_syntax("A BulkRequest needs an Operations list.")
    if len(operations) > settings.SCIM_BULK_MAX_OPERATIONS:
        raise too_large(f"At most {settings.SCIM_BULK_MAX_OPERATIONS} operations per bulk request.")
    _, fail_on_errors = _get(body, "failOnErrors")
    if fail_on_errors is not None and (not isinstance(fail_on_errors, int) or isinstance(fail_on_errors, bool)):
        raise invalid_syntax("failOnErrors must be an integer.")

    prepared = []
    bulk_ids: set[str] = set()
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise invalid_syntax("Each bulk operation must be an object.")
        _, method = _get(operation, "method")
        _, bulk_id = _get(operation, "bulkId")
        if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH", "DELETE"):
            raise invalid_syntax(f"Operation {index + 1}: method must be POST, PUT, PATCH or DELETE.")
        if method.upper() == "POST":
            if not isinstance(bulk_id, str) or not bulk_id:
                raise invalid_syntax(f"Operation {index + 1}: a POST needs a bulkId.")
            if bulk_id in bulk_ids:
                raise invalid_syntax(f"bulkId {bulk_id[:40]!r} is used twice.")
            bulk_ids.add(bulk_id)
        prepared.append(operation)

    created: dict[str, str] = {}
    results: list[dict | None] = [None] * len(prepared)
    pending = list(range(len(prepared)))
    errors = 0
    stopped = False
    while pending and not stopped:
        progressed = False
        waiting = []
        for index in pending:
            operation = prepared[index]
            _, path = _get(operation, "path")
            _, data = _get(operation, "data")
            wanted = _path_references(path) | _references(data)
            if wanted - bulk_ids:
                results[index] = _error_entry(operation, ScimError(409, "Unknown bulkId reference.", "invalidValue"))
            elif wanted - set(created):
                waiting.append(index)
                continue
            else:
                results[index] = _execute(token, request, operation, created)
            progressed = True
            if int(results[index]["status"]) >= 400:
                errors += 1
                if fail_on_errors and errors >= fail_on_errors:
                    stopped = True
                    break
        if not progressed:
            for index in waiting:
                results[index] = _error_entry(
                    prepared[index], ScimError(409, "bulkId reference cannot be resolved (circular or failed).")
                )
            break
        pending = waiting
    return {"schemas": [BULK_RESPONSE], "Operations": [entry for entry in results if entry is not None]}


def _entry_base(operation: dict) -> dict:
    _, method = _get(operation, "method")
    _, bulk_id = _get(operation, "bulkId")
    entry = {"method": str(method).upper()}
    if bulk_id:
        entry["bulkId"] = bulk_id
    return entry


def _error_entry(operation: dict, error: ScimError) -> dict:
    entry = _entry_base(operation)
    entry["status"] = str(error.status)
    entry["response"] = error.to_dict()
    return entry


def _execute(token: ScimToken, request: HttpRequest | None, operation: dict, created: dict[str, str]) -> dict:
    _, method = _get(operation, "method")
    _, path = _get(operation, "path")
    _, data = _get(operation, "data")
    _, version = _get(operation, "version")
    method = method.upper()
    try:
        result = _run(token, request, method, _substitute_path(path, created), _substitute(data, created), version)
    except ScimError as error:
        return _error_entry(operation, error)
    entry = _entry_base(operation)
    entry["status"] = str(result.status)
    if result.headers.get("Location"):
        entry["location"] = result.headers["Location"]
    if result.headers.get("ETag"):
        entry["version"] = result.headers["ETag"]
    if method == "POST" and result.body:
        created[entry["bulkId"]] = result.body["id"]
    return entry
