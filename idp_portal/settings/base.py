"""Core Django settings: database, security, apps, REST framework."""

import contextlib
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from idp_portal.settings.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state of a development checkout (SQLite database, embedded broker, beat schedule).
VAR_DIR = Path(env_str("IDP_VAR_DIR", str(BASE_DIR / "var")))
# A read-only image keeps all its state in PostgreSQL and Redis and needs no local folder.
with contextlib.suppress(OSError):
    VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = _DEV_SECRET_KEY

PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_portal_host = urlsplit(PORTAL_BASE_URL).hostname or "127.0.0.1"

# Loopback names stay allowed so that a container's own health probe reaches /healthz.
ALLOWED_HOSTS = [*env_list("ALLOWED_HOSTS", [_portal_host]), "127.0.0.1", "localhost", "[::1]"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PORTAL_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.common",
    "apps.audit",
    "apps.directory",
    "apps.api",
    "apps.connectors",
    "apps.provisioning",
    "apps.scim_server",
    "apps.saml_idp",
    "oauth2_provider",
    "apps.oidc",
    "apps.portal",
    "apps.console",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "djangosaml2",
    "apps.saml_sp",
]

MIDDLEWARE = [
    "apps.audit.middleware.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.common.security_headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.audit.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "djangosaml2.middleware.SamlSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.portal.middleware.SessionIdleTimeoutMiddleware",
    "apps.portal.middleware.PasswordChangeRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "idp_portal.urls"
WSGI_APPLICATION = "idp_portal.wsgi.application"
ASGI_APPLICATION = "idp_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.console.navigation.console_navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one SQLite file: WAL lets readers run beside
    # a writer, and IMMEDIATE transactions take the write lock up front instead of failing
    # with "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
elif env_bool("DB_PREPARED_STATEMENTS", True):
    # The statements of apps.common.db.hot_path_cursor (those every sign-in runs) are planned once
    # per connection; Django's own queries bind on the client and are never prepared.
    # Turn off behind a pooler that does not keep prepared statements (PgBouncer in transaction
    # mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
# apps.common.db.batched_statements sends a write, its audit row and the question to the connectors
# in one round trip (PostgreSQL pipeline mode). Off: one round trip per statement, same results.
DB_PIPELINE = env_bool("DB_PIPELINE", True)
# apps.common.generations: settings that rarely change (sign-in policy, SSO connectors and keys)
# cached per process, dropped by every process the moment a change is written. Off: read each time
# (bench/saml_sso.py measures both).
SETTINGS_CACHE = env_bool("SETTINGS_CACHE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A group rule change that would take more members than this out of the group at once is saved
# only when the admin confirms it (the console asks, the API wants `confirm_removals`); the
# provisioning circuit breaker still holds the deprovisionings it sets off downstream.
GROUP_RULE_CONFIRM_REMOVALS = env_int("GROUP_RULE_CONFIRM_REMOVALS", 25)

# --- Authentication -------------------------------------------------------------------------
AUTH_USER_MODEL = "directory.User"
# axes first (refuses locked-out clients), then passwords by username or email, then upstream SAML.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "apps.portal.backends.PortalBackend",
    "apps.saml_sp.backends.UpstreamSaml2Backend",
]
# The username is unique case-insensitively through a functional constraint on lower(username),
# which Django's check does not recognise as making USERNAME_FIELD unique.
SILENCED_SYSTEM_CHECKS = ["auth.E003"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # The minimum length is the sign-in policy's (console Settings); PASSWORD_MIN_LENGTH is its default.
    {"NAME": "apps.portal.policy.PolicyMinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = None

# --- Internationalisation, static files -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------
# Production defaults follow `manage.py check --deploy`; TLS is expected to end at a proxy
# that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Health checks from the container runtime speak plain HTTP on the private port.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Sessions live in the database only (ending one takes effect in every worker at once); this
# engine reads them with a plain statement instead of an ORM query (apps/common/sessions.py).
SESSION_ENGINE = "apps.common.sessions"
# The default absolute session lifetime of the sign-in policy (apps.portal.models.SignInPolicy).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 12)
X_FRAME_OPTIONS = "DENY"
# The reverse proxies in front of the portal (addresses or networks, comma-separated). Only a
# request whose TCP peer is one of them may say who the client is (X-Forwarded-For, read right to
# left past the trusted proxies) or that it came over HTTPS (X-Forwarded-Proto); from anyone else
# those headers are dropped (apps.audit.middleware). gunicorn reads the same variable
# (gunicorn.conf.py). Empty: nobody is believed, every client is its TCP peer.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy)
    except ValueError as _error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network ({_error}).") from None
if "TRUSTED_PROXY_COUNT" in os.environ:
    # Counting hops trusted whatever reached the port directly; refuse to start rather than
    # silently judge every client by the proxy's address.
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_COUNT is replaced by TRUSTED_PROXIES: list your reverse proxies' addresses or networks."
    )

# Fernet keys (comma-separated, first one encrypts) for secrets at rest: downstream tokens and
# private keys. Unset, a key is derived from SECRET_KEY; set it in production so that rotating
# SECRET_KEY does not make stored secrets unreadable. `python -c "from cryptography.fernet import
# Fernet; print(Fernet.generate_key().decode())"` makes one.
SECRETS_ENCRYPTION_KEYS = env_list("SECRETS_ENCRYPTION_KEYS", [])

# URLs typed by admins (SP metadata, SCIM base URLs) are never fetched on private, link-local or
# loopback addresses unless allowed here; development allows loopback so local test apps work.
OUTBOUND_ALLOW_LOOPBACK = env_bool("OUTBOUND_ALLOW_LOOPBACK", DEBUG)
OUTBOUND_ALLOW_PRIVATE_NETWORKS = env_bool("OUTBOUND_ALLOW_PRIVATE_NETWORKS", False)

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024)

# --- Audit log retention (apps/audit/retention.py) ------------------------------------------
# Events older than this many days are deleted by an hourly task; 0 keeps them forever (the
# default: deleting a trail is a decision, not something an upgrade does).
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 0)
# Rows deleted per statement, each its own short transaction, so that writers never wait long.
AUDIT_PRUNE_BATCH_SIZE = env_int("AUDIT_PRUNE_BATCH_SIZE", 2_000)
# One run stops after this long (well under the 60 s a task may take); the next run goes on.
AUDIT_PRUNE_BUDGET_SECONDS = env_int("AUDIT_PRUNE_BUDGET_SECONDS", 45)
# After each batch the prune rests this many times the batch's duration (apps/audit/retention.py).
AUDIT_PRUNE_PAUSE_RATIO = env_float("AUDIT_PRUNE_PAUSE_RATIO", 1.0)

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.api.permissions.StaffRolePermission"],
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.StandardPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "apps.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "idp-portal Admin API",
    "DESCRIPTION": "Automation API for the idp-portal directory, connectors and provisioning.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["apps.api.schema.strip_optional_trailing_slash"],
    "ENUM_NAME_OVERRIDES": {
        "ConnectorKindEnum": "apps.connectors.models.ConnectorKind",
        "MappingKindEnum": "apps.connectors.models.MappingKind",
        "UserStatusEnum": "apps.directory.models.UserStatus",
    },
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per downstream request is already in the provisioning delivery log.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "idp-portal@localhost")
