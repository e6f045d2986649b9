"""SCIM operations on Users and Groups, apart from HTTP: the parts every resource type shares.

Each operation (apps.scim_server.user_resources, group_resources, search) takes the authenticated
token, the parsed body and the headers that matter (If-Match), and returns a `ScimResult`; every
failure is a `ScimError`. Reads cost a constant number of queries per page (count, page, one query
for the page's groups or members) whatever the directory's size. Views and /Bulk both call them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from apps.audit.services import SystemActor, audit_record
from apps.common.errors import ApplicationError, ConflictError, PermissionRefused
from apps.common.paging import known_count
from apps.directory.rules.services import RuleBasedMembershipError
from apps.directory.services import LastSuperAdminError
from apps.scim_server import filters
from apps.scim_server.adapters import (
    ScimGroupAdapter,
    ScimUserAdapter,
)
from apps.scim_server.errors import ScimError, invalid_value, mutability, not_found
from apps.scim_server.models import ScimToken
from apps.scim_server.projection import ListParams
from apps.scim_server.schemas import CUSTOM_USER_SCHEMA, ENTERPRISE_SCHEMA, LIST_RESPONSE


@dataclass
class ScimResult:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


# --- Shared helpers ----------------------------------------------------------------------------


def actor_for(token: ScimToken) -> SystemActor:
    return SystemActor(label=token.label, manages_staff=token.manages_staff)


def require_write(token: ScimToken) -> None:
    if not token.can_write:
        raise ScimError(403, "This SCIM token is read-only.")


def uuid_or_404(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise not_found(f"Resource {str(value)[:60]} not found.") from None


def check_if_match(if_match: str | None, version: str) -> None:
    if not if_match:
        return
    wanted = [item.strip() for item in if_match.split(",")]
    if "*" in wanted:
        return
    bare = version.removeprefix("W/")
    if not any(item.removeprefix("W/") == bare for item in wanted):
        raise ScimError(412, "The resource has changed since that version (If-Match).")


_FIELD_TO_ATTRIBUTE = {
    "username": "userName",
    "email": "emails",
    "first_name": "name.givenName",
    "last_name": "name.familyName",
    "display_name": "displayName",
    "employee_id": f"{ENTERPRISE_SCHEMA}:employeeNumber",
    "external_id": "externalId",
    "password": "password",
    "name": "displayName",
    "description": "description",
    "nick_name": "nickName",
    "title": "title",
    "user_type": "userType",
    "preferred_language": "preferredLanguage",
    "locale": "locale",
    "timezone": "timezone",
    "profile_url": "profileUrl",
    "emails": "emails",
    "phone_numbers": "phoneNumbers",
    "addresses": "addresses",
    "photos": "photos",
    "cost_center": f"{ENTERPRISE_SCHEMA}:costCenter",
    "organization": f"{ENTERPRISE_SCHEMA}:organization",
    "division": f"{ENTERPRISE_SCHEMA}:division",
    "department": f"{ENTERPRISE_SCHEMA}:department",
    "manager": f"{ENTERPRISE_SCHEMA}:manager",
    "custom_attributes": CUSTOM_USER_SCHEMA,
}


def _attribute_name(field_name: str) -> str:
    """The SCIM path of a directory field an error names (`custom_attributes.<name>` included)."""
    if field_name.startswith("custom_attributes."):
        return f"{CUSTOM_USER_SCHEMA}:{field_name.partition('.')[2]}"
    return _FIELD_TO_ATTRIBUTE.get(field_name, field_name)


def _validation_error(exc: ValidationError) -> ScimError:
    messages = []
    unique = False
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            for error in errors:
                unique = unique or error.code == "unique"
                text = " ".join(error.messages)
                messages.append(f"{_attribute_name(name)}: {text}")
    else:
        messages = list(exc.messages)
    detail = " ".join(messages)[:1000] or "Invalid value."
    return ScimError(409, detail, "uniqueness") if unique else ScimError(400, detail, "invalidValue")


def run_write(token: ScimToken, operation: str, target: Any, write: Callable[[], Any]) -> Any:
    """Run a write, turning domain errors into SCIM errors; break-glass refusals are audited.

    `target` is the object written, or a callable giving it (when `write` loads it itself).
    """
    try:
        return write()
    except (LastSuperAdminError, PermissionRefused) as exc:
        with transaction.atomic():
            audit_record(
                actor=actor_for(token),
                action="scim.refused",
                target=target() if callable(target) else target,
                after={"operation": operation, "reason": exc.code, "detail": exc.message},
            )
        raise ScimError(403, f"Refused: {exc.message}") from None
    except ConflictError as exc:
        raise ScimError(409, exc.message) from None
    except RuleBasedMembershipError as exc:
        # A rule-based group's members are derived: over SCIM they cannot be written (RFC 7644 §3.12).
        raise mutability(exc.message) from None
    except ValidationError as exc:
        raise _validation_error(exc) from None
    except ApplicationError as exc:
        raise invalid_value(exc.message) from None


def resource_result(adapter: ScimUserAdapter | ScimGroupAdapter, document: dict, status: int = 200) -> ScimResult:
    return ScimResult(status, document, {"Location": adapter.location, "ETag": adapter.version})


def list_response(resources: list[dict], total: int, start: int) -> dict:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": start,
        "Resources": resources,
    }


# Below this offset an OFFSET through the index is as quick as reading the range counts.
SEEK_FROM = 2000


def page_of(
    queryset: QuerySet,
    params: ListParams,
    target: filters.FilterTarget,
    prepare: Callable[[QuerySet], QuerySet] = lambda queryset: queryset,
    unfiltered_seek: Callable[[int], tuple[Any, int] | None] | None = None,
) -> tuple[int, list]:
    """The total and one page. A whole counted table is not COUNTed (apps.common.paging.known_count),
    and when no filter narrows `queryset`, `unfiltered_seek(n)` says where its n-th row by primary
    key is, from the same counters: at a million users a COUNT(*) and an OFFSET through half of the
    primary key cost more than the page."""
    seek = unfiltered_seek
    if params.filter is not None:
        queryset = filters.filter_queryset(queryset, params.filter, target)
        seek = None

    def count() -> int:
        known = known_count(queryset)
        return queryset.count() if known is None else known

    if params.count == 0:
        return count(), []
    order = filters.sort_field(params.sort_by, target) if params.sort_by else "pk"
    prefix = "-" if params.descending else ""
    ordering = [f"{prefix}{order}"] if order == "pk" else [f"{prefix}{order}", "pk"]
    offset = params.start_index - 1
    if offset:
        keys, skip = queryset.order_by(*ordering).values("pk"), offset
        if seek is not None and order == "pk" and not params.descending and offset >= SEEK_FROM:
            found = seek(offset)
            if found is None:
                return count(), []  # past the end
            start, skip = found
            if start is not None:
                keys = keys.filter(pk__gte=start)
        # Deferred join: the rows an OFFSET skips are walked in the primary-key index only (an
        # index-only scan), and just the page's rows are read in full.
        page_keys = keys[skip : skip + params.count]
        page = queryset.model._default_manager.filter(pk__in=page_keys)
        rows = list(prepare(page).order_by(*ordering))
    else:
        rows = list(prepare(queryset).order_by(*ordering)[: params.count])
    if rows and len(rows) < params.count:
        # A partial page is the last one: its end is the total, no COUNT needed (a lookup by
        # userName costs one query, not two).
        return offset + len(rows), rows
    return count(), rows
