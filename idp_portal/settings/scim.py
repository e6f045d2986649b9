"""Inbound SCIM 2.0 server (django-scim2) settings."""

from urllib.parse import urlsplit

from idp_portal.settings.base import LOGGING, PORTAL_BASE_URL
from idp_portal.settings.env import env_bool, env_int

_portal = urlsplit(PORTAL_BASE_URL)

# django-scim2's settings hook: our adapters, schema documents and ServiceProviderConfig replace
# its defaults; its base-location getter builds `meta.location` from SCHEME and NETLOC.
SCIM_SERVICE_PROVIDER = {
    "USER_ADAPTER": "apps.scim_server.adapters.ScimUserAdapter",
    "GROUP_ADAPTER": "apps.scim_server.adapters.ScimGroupAdapter",
    "GROUP_MODEL": "apps.directory.models.Group",
    "SERVICE_PROVIDER_CONFIG_MODEL": "apps.scim_server.schemas.ServiceProviderConfig",
    "SCHEMAS_GETTER": "apps.scim_server.schemas.schema_documents",
    # meta.location follows the host the client called (validated by ALLOWED_HOSTS), falling
    # back to SCHEME://NETLOC from PORTAL_BASE_URL outside a request.
    "BASE_LOCATION_GETTER": "apps.scim_server.schemas.base_location",
    "SCHEME": _portal.scheme or "https",
    "NETLOC": _portal.netloc or "127.0.0.1:8000",
    "DOCUMENTATION_URI": None,
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bearer token created in the console, the admin API (/api/v1/scim-tokens) "
            "or with `manage.py create_scim_token`.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": True,
        }
    ],
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="scim"',
    # Never echo exception text to a SCIM client.
    "EXPOSE_SCIM_EXCEPTIONS": False,
}

# Limits, advertised in /ServiceProviderConfig and enforced.
SCIM_MAX_PAYLOAD_BYTES = env_int("SCIM_MAX_PAYLOAD_BYTES", 1024 * 1024)
SCIM_BULK_MAX_OPERATIONS = env_int("SCIM_BULK_MAX_OPERATIONS", 1000)
SCIM_MAX_PAGE_SIZE = env_int("SCIM_MAX_PAGE_SIZE", 1000)
SCIM_DEFAULT_PAGE_SIZE = env_int("SCIM_DEFAULT_PAGE_SIZE", 100)
SCIM_MAX_FILTER_LENGTH = env_int("SCIM_MAX_FILTER_LENGTH", 2048)
SCIM_MAX_FILTER_DEPTH = env_int("SCIM_MAX_FILTER_DEPTH", 10)
# Requests per token per minute; 0 turns the limit off.
SCIM_RATE_LIMIT_PER_MINUTE = env_int("SCIM_RATE_LIMIT_PER_MINUTE", 1200)
# Off by default: an upstream IdP pushing passwords is rarely what a directory wants.
SCIM_ALLOW_PASSWORD_WRITE = env_bool("SCIM_ALLOW_PASSWORD_WRITE", False)

# django-scim2's own request logging prints bodies (PATCH values in clear); its views are not
# used, and its logger is kept quiet in case anything of it ever runs.
LOGGING["loggers"]["django_scim"] = {"level": "WARNING"}
