"""OpenAPI description of the API's authentication for drf-spectacular."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `python manage.py create_api_token USERNAME`.",
        }


def strip_optional_trailing_slash(endpoints: list) -> list:
    """Document the API's paths as written in the README (`/api/v1/users`), not with the optional slash."""
    return [
        (path[:-1] if path.endswith("/") and len(path) > 1 else path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
    ]
