"""Pausing and resuming a connector's provisioning: the one writer of `ProvisioningSettings.paused`.

Called by provisioning (an admin's pause, the deprovisioning circuit breaker, a decided hold), which
audits the reason; the settings stay written by the connectors app alone.
"""

from apps.connectors.models import Connector

PAUSED_REASON_LENGTH = 255


def provisioning_pause(*, connector: Connector, reason: str) -> None:
    """Stop sending changes to the connector's app until it is resumed; `reason` is shown to admins."""
    provisioning = connector.provisioning
    provisioning.paused, provisioning.paused_reason = True, reason[:PAUSED_REASON_LENGTH]
    provisioning.save(update_fields=["paused", "paused_reason"])


def provisioning_resume(*, connector: Connector) -> None:
    provisioning = connector.provisioning
    provisioning.paused, provisioning.paused_reason = False, ""
    provisioning.save(update_fields=["paused", "paused_reason"])
