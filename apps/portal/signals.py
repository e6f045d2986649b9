"""Receivers: the audit row for the moment an account or an address gets locked out."""

from typing import Any

from apps.portal.lockout import record_lockout


def audit_lockout(
    sender: Any, request: Any = None, username: str | None = None, ip_address: str | None = None, **kwargs: Any
) -> None:
    record_lockout(request=request, username=username, ip_address=ip_address)
