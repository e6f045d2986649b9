"""SCIM 2.0 endpoints: authenticate, limit, parse, call the operations (user_resources, group_resources,
search), render.

These replace django-scim2's views, which accept whatever authenticated a session, answer some
errors without a SCIM body and list pages by loading every row. Nothing here logs a request body.
"""

import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django_scim.constants import SCIM_CONTENT_TYPE
from django_scim.utils import get_all_schemas_getter, get_service_provider_config_model

from apps.scim_server import bulk, group_resources, search, user_resources
from apps.scim_server.auth import authenticate
from apps.scim_server.errors import ScimError, invalid_syntax, invalid_value, not_found, too_large
from apps.scim_server.models import ScimToken
from apps.scim_server.projection import ListParams, list_params
from apps.scim_server.ratelimit import rate_limit_hit
from apps.scim_server.resources import ScimResult, list_response
from apps.scim_server.schemas import SEARCH_REQUEST, resource_type_documents

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32


def _check_structure(document: Any) -> None:
    """Refuse absurd nesting and NUL characters (which PostgreSQL cannot store) before any use."""
    stack = [(document, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise invalid_syntax(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, str):
            if "\x00" in item:
                raise invalid_value("Strings cannot contain NUL characters.")
        elif isinstance(item, dict):
            for key, value in item.items():
                if "\x00" in key:
                    raise invalid_value("Strings cannot contain NUL characters.")
                stack.append((value, depth + 1))
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)


# RFC 7644 §3.1: SCIM speaks application/scim+json; plain JSON is what many clients send.
JSON_CONTENT_TYPES = frozenset({"application/scim+json", "application/json"})


def read_json(request: HttpRequest) -> Any:
    if request.content_type.lower() not in JSON_CONTENT_TYPES:
        # A form or text/plain body is what a cross-site page can send without a preflight.
        raise ScimError(415, "Send the body as application/scim+json (or application/json).", "invalidSyntax")
    limit = settings.SCIM_MAX_PAYLOAD_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise invalid_syntax("Invalid Content-Length.") from None
    if declared > limit:
        raise too_large(f"The request body is over the {limit}-byte limit.")
    body = request.body
    if len(body) > limit:
        raise too_large(f"The request body is over the {limit}-byte limit.")
    if not body.strip():
        raise invalid_syntax("The request needs a JSON body.")
    try:
        document = json.loads(body)
    except RecursionError:
        raise invalid_syntax(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError:
        raise invalid_syntax("The request body is not valid JSON.") from None
    _check_structure(document)
    return document


def render(result: ScimResult) -> HttpResponse:
    if result.body is None:
        response = HttpResponse(status=result.status)
    else:
        response = HttpResponse(json.dumps(result.body), content_type=SCIM_CONTENT_TYPE, status=result.status)
    for name, value in result.headers.items():
        response[name] = value
    return response


def _query(request: HttpRequest) -> dict[str, str]:
    return {key: request.GET.get(key) for key in request.GET}


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(View):
    """Bearer token, rate limit, method check; every failure is a SCIM error response.

    CSRF-exempt because only a bearer token authenticates here: the session cookie is ignored,
    so a cross-site request carries no credential.
    """

    allowed_methods: tuple[str, ...] = ("GET",)
    token: ScimToken

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.token = authenticate(request)
            self.charge(1)
            method = request.method.upper()
            if method == "HEAD" and "GET" in self.allowed_methods:
                method = "GET"
            if method not in self.allowed_methods:
                raise ScimError(
                    405, f"{request.method} is not allowed here.", headers={"Allow": ", ".join(self.allowed_methods)}
                )
            result = getattr(self, method.lower())(request, *args, **kwargs)
        except ScimError as error:
            return error.response()
        except Exception:
            logger.exception("SCIM %s %s failed", request.method, request.path)
            return ScimError(500, "The server could not complete this SCIM request.").response()
        return result if isinstance(result, HttpResponse) else render(result)

    def charge(self, cost: int) -> None:
        """Count `cost` requests against the token's budget; 429 when it is spent."""
        limit = settings.SCIM_RATE_LIMIT_PER_MINUTE
        if 0 < limit < cost:
            raise too_large(f"{cost} operations are more than this token may send in a minute ({limit}).")
        # Keyed by the secret's hash: unique per token, even across databases sharing one Redis.
        decision = rate_limit_hit(self.token.secret_hash[:32], cost=cost)
        if not decision.allowed:
            raise ScimError(
                429,
                "Too many requests for this SCIM token; retry later.",
                headers={"Retry-After": str(decision.retry_after)},
            )


class ServiceProviderConfigView(ScimView):
    def get(self, request: HttpRequest) -> ScimResult:
        return ScimResult(200, get_service_provider_config_model()(request=request).to_dict())


class ResourceTypesView(ScimView):
    def get(self, request: HttpRequest, type_id: str | None = None) -> ScimResult:
        documents = resource_type_documents(request)
        if type_id is None:
            return ScimResult(200, list_response(documents, len(documents), 1))
        for document in documents:
            if document["id"] == type_id:
                return ScimResult(200, document)
        raise not_found(f"Resource type {type_id[:60]} not found.")


class SchemasView(ScimView):
    def get(self, request: HttpRequest, schema_id: str | None = None) -> ScimResult:
        documents = get_all_schemas_getter()(request)
        if schema_id is None:
            return ScimResult(200, list_response(documents, len(documents), 1))
        for document in documents:
            if document["id"] == schema_id:
                return ScimResult(200, document)
        raise not_found(f"Schema {schema_id[:100]} not found.")


def _if_none_match(request: HttpRequest, result: ScimResult) -> ScimResult | HttpResponse:
    wanted = request.META.get("HTTP_IF_NONE_MATCH")
    etag = result.headers.get("ETag")
    if wanted and etag and etag.removeprefix("W/") in {item.strip().removeprefix("W/") for item in wanted.split(",")}:
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    return result


class UsersView(ScimView):
    allowed_methods = ("GET", "POST")

    def get(self, request: HttpRequest) -> ScimResult:
        return user_resources.user_list(self.token, request, list_params(_query(request)))

    def post(self, request: HttpRequest) -> ScimResult:
        return user_resources.user_create(self.token, request, read_json(request))


class UserView(ScimView):
    allowed_methods = ("GET", "PUT", "PATCH", "DELETE")

    def get(self, request: HttpRequest, uuid: str):
        return _if_none_match(request, user_resources.user_get(self.token, request, uuid, list_params(_query(request))))

    def put(self, request: HttpRequest, uuid: str) -> ScimResult:
        body = read_json(request)
        return user_resources.user_replace(self.token, request, uuid, body, request.META.get("HTTP_IF_MATCH"))

    def patch(self, request: HttpRequest, uuid: str) -> ScimResult:
        body = read_json(request)
        return user_resources.user_patch(self.token, request, uuid, body, request.META.get("HTTP_IF_MATCH"))

    def delete(self, request: HttpRequest, uuid: str) -> ScimResult:
        return user_resources.user_delete(self.token, request, uuid, request.META.get("HTTP_IF_MATCH"))


class GroupsView(ScimView):
    allowed_methods = ("GET", "POST")

    def get(self, request: HttpRequest) -> ScimResult:
        return group_resources.group_list(self.token, request, list_params(_query(request)))

    def post(self, request: HttpRequest) -> ScimResult:
        return group_resources.group_create(self.token, request, read_json(request))


class GroupView(ScimView):
    allowed_methods = ("GET", "PUT", "PATCH", "DELETE")

    def get(self, request: HttpRequest, uuid: str):
        return _if_none_match(
            request, group_resources.group_get(self.token, request, uuid, list_params(_query(request)))
        )

    def put(self, request: HttpRequest, uuid: str) -> ScimResult:
        body = read_json(request)
        return group_resources.group_replace(self.token, request, uuid, body, request.META.get("HTTP_IF_MATCH"))

    def patch(self, request: HttpRequest, uuid: str) -> ScimResult:
        body = read_json(request)
        return group_resources.group_patch(self.token, request, uuid, body, request.META.get("HTTP_IF_MATCH"))

    def delete(self, request: HttpRequest, uuid: str) -> ScimResult:
        return group_resources.group_delete(self.token, request, uuid, request.META.get("HTTP_IF_MATCH"))


def _search_params(body: Any) -> ListParams:
    if not isinstance(body, dict):
        raise invalid_syntax("A SearchRequest must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST not in schemas:
        raise invalid_syntax(f"schemas must list {SEARCH_REQUEST}.")
    return list_params({key: value for key, value in body.items() if key != "schemas"})


class UserSearchView(ScimView):
    allowed_methods = ("POST",)

    def post(self, request: HttpRequest) -> ScimResult:
        return user_resources.user_list(self.token, request, _search_params(read_json(request)))


class GroupSearchView(ScimView):
    allowed_methods = ("POST",)

    def post(self, request: HttpRequest) -> ScimResult:
        return group_resources.group_list(self.token, request, _search_params(read_json(request)))


class BulkView(ScimView):
    allowed_methods = ("POST",)

    def post(self, request: HttpRequest) -> ScimResult:
        body = read_json(request)
        # The request itself was counted; one over the maximum is refused by run_bulk.
        extra_operations = min(bulk.operation_count(body), settings.SCIM_BULK_MAX_OPERATIONS) - 1
        if extra_operations > 0:
            self.charge(extra_operations)
        return ScimResult(200, bulk.run_bulk(self.token, request, body))


class RootSearchView(ScimView):
    allowed_methods = ("POST",)

    def post(self, request: HttpRequest) -> ScimResult:
        return search.root_search(self.token, request, _search_params(read_json(request)))


class NotImplementedView(ScimView):
    """/Me: no user is behind a SCIM token."""

    allowed_methods = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def _not_implemented(self, request: HttpRequest, *args: Any, **kwargs: Any) -> ScimResult:
        raise ScimError(501, "Not supported by this server.")

    get = post = put = patch = delete = _not_implemented


class NotFoundView(ScimView):
    allowed_methods = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def _not_found(self, request: HttpRequest, *args: Any, **kwargs: Any) -> ScimResult:
        raise not_found(f"No SCIM endpoint at {request.path[:100]}.")

    get = post = put = patch = delete = _not_found
