"""When a connector's sign-in traffic is recorded (`SsoSettings.trace_until`, `OidcSettings.trace_until`):
the connectors app owns the setting; apps.saml_idp.tracer and apps.oidc.tracer decide, audit and
record through these."""

import datetime

from apps.connectors.models import Connector, OidcSettings, SsoSettings


def trace_window_set(connector: Connector, until: datetime.datetime | None) -> None:
    """Record the connector's traffic until `until` (None: stop now)."""
    SsoSettings.objects.filter(connector=connector).update(trace_until=until)
    connector.sso.trace_until = until


def trace_windows_close_past(now: datetime.datetime) -> int:
    """End every capture whose time is up; returns how many."""
    closed = SsoSettings.objects.filter(trace_until__lte=now).update(trace_until=None)
    return closed + OidcSettings.objects.filter(trace_until__lte=now).update(trace_until=None)


def oidc_trace_window_set(connector: Connector, until: datetime.datetime | None) -> None:
    """Record the connector's OpenID Connect authorization requests until `until` (None: stop now)."""
    OidcSettings.objects.filter(connector=connector).update(trace_until=until)
    connector.oidc.trace_until = until
