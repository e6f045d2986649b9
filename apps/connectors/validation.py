"""Rules for URLs and settings an admin gives a connector (pure functions raising ValueError)."""

from urllib.parse import urlsplit

from apps.common.http import is_loopback_host

MAX_URL_LENGTH = 2000


def validate_app_url(url: str, *, what: str = "URL", allow_http: bool = False) -> str:
    """An https URL (http only for loopback hosts, or anywhere when `allow_http`)."""
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"The {what} is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise ValueError(f"The {what} must start with https:// (not {scheme or 'a relative path'}).")
    if not parts.hostname:
        raise ValueError(f"The {what} has no host.")
    if parts.username or parts.password:
        raise ValueError(f"The {what} must not contain credentials.")
    if any(ord(char) < 0x21 for char in url):
        raise ValueError(f"The {what} contains spaces or control characters.")
    if scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise ValueError(f"The {what} must use https (http is allowed only for 127.0.0.1, ::1 and localhost).")
    return url
