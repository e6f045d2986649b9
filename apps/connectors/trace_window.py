"""When a connector's SAML traffic is recorded (`SsoSettings.trace_until`): the connectors app owns
the setting; apps.saml_idp.tracer decides, audits and records through these."""

import datetime

from apps.connectors.models import Connector, SsoSettings


def trace_window_set(connector: Connector, until: datetime.datetime | None) -> None:
    """Record the connector's traffic until `until` (None: stop now)."""
    SsoSettings.objects.filter(connector=connector).update(trace_until=until)
    connector.sso.trace_until = until


def trace_windows_close_past(now: datetime.datetime) -> int:
    """End every capture whose time is up; returns how many."""
    return SsoSettings.objects.filter(trace_until__lte=now).update(trace_until=None)
