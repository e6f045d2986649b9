"""End-user sign-in (apps.portal) and delegated login (apps.saml_sp): lockout, MFA, CSP, sessions."""

from idp_portal.settings.base import SESSION_COOKIE_SECURE
from idp_portal.settings.env import env_bool, env_int, env_str

# The sign-in policy (minimum password length, MFA for everyone, session lifetimes, lockout) is
# edited at runtime in the console's Settings (apps.portal.models.SignInPolicy); the values here
# are its defaults until an admin saves it.

# --- Second factor --------------------------------------------------------------------------
# Everyone must have a second factor (those without one enrol right after their password).
# Staff always need one: without it their sign-in stops at enrolment
# (apps.portal.services.second_factor_required), and staff pages send a session without one
# there (apps.portal.decorators.staff_mfa_required).
PORTAL_MFA_REQUIRED = env_bool("PORTAL_MFA_REQUIRED", False)
# How long the step between the password and the second factor may take; also how long the
# password typed again allows setting up a factor (apps.portal.enrolment).
PORTAL_MFA_PENDING_SECONDS = env_int("PORTAL_MFA_PENDING_SECONDS", 300)
# Wrong codes in one pending sign-in before the password has to be typed again.
PORTAL_MFA_MAX_ATTEMPTS = env_int("PORTAL_MFA_MAX_ATTEMPTS", 5)
PORTAL_RECOVERY_CODE_COUNT = env_int("PORTAL_RECOVERY_CODE_COUNT", 10)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "idp-portal")
# One 30-second step either side, for clocks that drift.
OTP_TOTP_TOLERANCE = 1
# django-otp doubles the wait after each wrong code (1 s, 2 s, 4 s, ...).
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1

# --- Sessions -------------------------------------------------------------------------------
# SESSION_COOKIE_AGE (settings.base) is the absolute lifetime; this is the idle one.
PORTAL_SESSION_IDLE_SECONDS = env_int("PORTAL_SESSION_IDLE_SECONDS", 2 * 3600)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)
# Reset emails: per account and per client address, within a sliding window.
PASSWORD_RESET_WINDOW_SECONDS = env_int("PASSWORD_RESET_WINDOW_SECONDS", 3600)
PASSWORD_RESET_MAX_PER_ACCOUNT = env_int("PASSWORD_RESET_MAX_PER_ACCOUNT", 3)
PASSWORD_RESET_MAX_PER_IP = env_int("PASSWORD_RESET_MAX_PER_IP", 20)

# --- Brute-force protection (django-axes) ---------------------------------------------------
# Two locks, each with its own limit and cool-off (defaults of the sign-in policy, editable in
# the console): an account locks after AXES_FAILURE_LIMIT failures from anywhere, for
# AXES_COOLOFF_HOURS; a client address locks only after AXES_ADDRESS_FAILURE_LIMIT failures
# whatever the names tried, for AXES_ADDRESS_COOLOFF_MINUTES, because everyone behind that
# address (an office NAT, a VPN exit) is locked with it.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
# axes records every failure; the portal's handler judges accounts and addresses apart (axes'
# own single-limit decision is off).
AXES_HANDLER = "apps.portal.lockout.PortalLockoutHandler"
AXES_LOCK_OUT_AT_FAILURE = False
PORTAL_LOCKOUT_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
PORTAL_LOCKOUT_ADDRESS_FAILURE_LIMIT = env_int("AXES_ADDRESS_FAILURE_LIMIT", 50)
PORTAL_LOCKOUT_ADDRESS_COOLOFF_SECONDS = env_int("AXES_ADDRESS_COOLOFF_MINUTES", 15) * 60
# Read from the sign-in policy on each attempt, so a change in the console applies at once.
AXES_FAILURE_LIMIT = "apps.portal.policy.lockout_failure_limit"
# What the attempt rows are filtered by (the handler sums them per account and per address).
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
# The client address as the audit trail sees it: X-Forwarded-For is believed only from the
# proxies in TRUSTED_PROXIES, so a client cannot reset its counter by inventing a header.
AXES_CLIENT_IP_CALLABLE = "apps.audit.middleware.client_ip"
# "Jane.Doe", "jane.doe" and jane's email are one account to the counter.
AXES_USERNAME_CALLABLE = "apps.portal.lockout.attempted_username"
AXES_LOCKOUT_CALLABLE = "apps.portal.lockout.lockout_response"
# Hours until a lockout lifts by itself; 0 keeps it until an admin unlocks.
PORTAL_LOCKOUT_COOLOFF_SECONDS = env_int("AXES_COOLOFF_HOURS", 1) * 3600
# How long failed attempts are kept (the longer cool-off); each lock reads its own.
AXES_COOLOFF_TIME = "apps.portal.policy.lockout_attempt_retention"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = False
# Never write what was typed in the password field to the attempt log.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "token", "code"]
AXES_VERBOSE = False

# --- Security headers (apps.common.security_headers.SecurityHeadersMiddleware) --------------------
# No inline script anywhere; styles from our own files only. `PORTAL_CSP_REPORT_ONLY=true`
# sends the same policy as Content-Security-Policy-Report-Only while trying it out.
PORTAL_CSP_REPORT_ONLY = env_bool("PORTAL_CSP_REPORT_ONLY", False)

# --- Delegated login (djangosaml2, apps.saml_sp) --------------------------------------------
SAML_CONFIG_LOADER = "apps.saml_sp.conf.config_loader"
SAML_DEFAULT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SAML_IGNORE_AUTHENTICATED_USERS_ON_LOGIN = True
SAML_CREATE_UNKNOWN_USER = False
SAML_ATTRIBUTE_MAPPING: dict = {}
SAML_SESSION_COOKIE_NAME = "saml_session"
# The portal sets its own Content-Security-Policy (apps.common.security_headers), not django-csp's.
SAML_CSP_HANDLER = ""
# The upstream IdP answers with a cross-site POST: the cookie that remembers our AuthnRequest
# must travel with it, which needs SameSite=None, which browsers accept only on Secure cookies.
SAML_SESSION_COOKIE_SAMESITE = "None" if SESSION_COOKIE_SECURE else "Lax"
# Largest upstream metadata document fetched or accepted.
SAML_SP_MAX_METADATA_BYTES = env_int("SAML_SP_MAX_METADATA_BYTES", 1024 * 1024)
# An upstream's Response (and its assertion) issued longer ago than this is refused, solicited or
# not; each assertion ID is remembered for this long (plus the clock skew) and accepted once.
SAML_SP_RESPONSE_MAX_AGE_SECONDS = env_int("SAML_SP_RESPONSE_MAX_AGE_SECONDS", 300)
# After a rotation, the retired key of delegated login still decrypts this long, for IdPs that
# encrypt to the certificate they fetched before it.
SAML_SP_RETIRED_KEY_GRACE_SECONDS = env_int("SAML_SP_RETIRED_KEY_GRACE_SECONDS", 7 * 24 * 3600)

# Usernames are unique case-insensitively (a functional constraint Django's check cannot see),
# and PortalBackend looks them up that way.
from idp_portal.settings.base import SILENCED_SYSTEM_CHECKS as _BASE_SILENCED  # noqa: E402

SILENCED_SYSTEM_CHECKS = [*_BASE_SILENCED, "auth.W004"]

# --- Admin console (apps.console) ------------------------------------------------------------
# Sensitive actions (key rotation, token creation, role changes) ask for the password or a
# second factor again when the sign-in is older than this.
CONSOLE_REAUTH_SECONDS = env_int("CONSOLE_REAUTH_SECONDS", 15 * 60)
# Rows per page in the console's lists.
CONSOLE_PAGE_SIZE = env_int("CONSOLE_PAGE_SIZE", 50)
