""" "Test connection": reach the app's SCIM API read-only and say in plain words what it supports."""

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.audit.services import Actor, audit_record
from apps.common.crypto import SecretDecryptionError, decrypt_secret
from apps.common.http import OutboundURLError, check_outbound_url
from apps.connectors.models import Connector
from apps.provisioning.client import PermanentScimError, ScimClient, ScimError


@dataclass
class ProbeReport:
    ok: bool = False
    base_url: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    supports: dict[str, bool] = field(default_factory=dict)
    suggestions: list[str] = field(default_factory=list)
    error: str = ""
    token_source: str = "stored"  # noqa: S105 - or "entered" (typed in the form, not saved yet); never a token

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"name": name, "ok": ok, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "base_url": self.base_url,
            "checks": self.checks,
            "supports": self.supports,
            "suggestions": self.suggestions,
            "error": self.error,
            "token_source": self.token_source,
        }


def _plain(exc: ScimError) -> str:
    if exc.status in (401, 403):
        return f"The app refused the bearer token (HTTP {exc.status}); copy the token again from the app."
    if exc.status == 404:
        return "The app has no SCIM endpoint at this URL (HTTP 404); check the SCIM base URL."
    return exc.message


def connection_test(
    *, actor: Actor, connector: Connector, base_url: str | None = None, token: str | None = None
) -> ProbeReport:
    """ "Test connection" from the console or the API: probe, then audit which URL was probed."""
    report = probe_connection(connector, base_url=base_url, token=token)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="provisioning.test_connection",
            target=connector,
            after={
                "ok": report.ok,
                "url": report.base_url,
                "token": "entered" if token else "stored",
                "error": report.error,
            },
        )
    return report


def probe_connection(connector: Connector, *, base_url: str | None = None, token: str | None = None) -> ProbeReport:
    """Probe `base_url` (else the stored URL) with `token` (else the stored token).

    The stored token goes only to the stored URL: a probe of another URL needs the token typed in,
    or "Test connection" would hand the secret to whatever address was posted."""
    settings = connector.provisioning
    report = ProbeReport(
        base_url=(base_url or settings.base_url).rstrip("/"), token_source="entered" if token else "stored"
    )
    if not report.base_url:
        report.error = "Set the SCIM base URL first."
        return report
    try:
        check_outbound_url(report.base_url)
    except OutboundURLError as exc:
        report.error = str(exc)
        return report
    if token is None and report.base_url != settings.base_url.rstrip("/"):
        report.error = (
            "Enter the app's token to test this URL: the stored token is only ever sent to the SCIM base URL "
            "it was saved with."
        )
        return report
    if token is None:
        if not settings.token_ciphertext:
            report.error = "Set the app's bearer token first."
            return report
        try:
            token = decrypt_secret(settings.token_ciphertext)
        except SecretDecryptionError:
            report.error = "The stored token cannot be decrypted (the encryption key changed); set it again."
            return report

    client = ScimClient(report.base_url, token)
    try:
        _probe(client, report)
    finally:
        client.close()
    return report


def _probe(client: ScimClient, report: ProbeReport) -> None:
    try:
        config = client.service_provider_config() or {}
    except ScimError as exc:
        report.check("ServiceProviderConfig", False, _plain(exc))
        report.error = _plain(exc)
        return
    for feature in ("patch", "filter", "bulk", "etag", "sort", "changePassword"):
        report.supports[feature] = bool((config.get(feature) or {}).get("supported"))
    report.check("ServiceProviderConfig", True, "Read the app's service provider configuration.")

    absent = f"idp-portal-probe-{secrets.token_hex(6)}"
    try:
        found = client.search("Users", f'userName eq "{absent}"')
        report.check("Filter by userName", not found, "The app answers userName eq filters." if not found else
                     "A filter for a user that cannot exist returned results: the app ignores filters.")  # fmt: skip
        report.supports["filter"] = report.supports.get("filter", False) or not found
    except ScimError as exc:
        report.check("Filter by userName", False, _plain(exc))
        if exc.status in (401, 403):
            # The app refused the token: what it supports is unknown, not "no" (its configuration
            # page may be public, but that says nothing about what this token may do).
            report.supports.clear()
            report.error = _plain(exc)
            return
        report.supports["filter"] = False

    try:
        page = client.list_page("Users", start_index=1, count=1)
        resources = page.get("Resources") or []
        paging_ok = "totalResults" in page and len(resources) <= 1
        report.check("Paging", paging_ok, f"{page.get('totalResults', '?')} users; count=1 returned {len(resources)}.")
        report.supports["paging"] = paging_ok
        if resources and resources[0].get("userName"):
            name = str(resources[0]["userName"])
            flipped = name.swapcase()
            if flipped != name:
                same = client.search("Users", f'userName eq "{flipped}"')
                report.supports["case_insensitive_username"] = bool(same)
                report.check(
                    "userName case", True,
                    "userName is compared case-insensitively." if same else "userName is compared case-sensitively.",
                )  # fmt: skip
    except PermanentScimError as exc:
        report.check("Paging", False, _plain(exc))
    except ScimError as exc:
        report.check("Paging", False, _plain(exc))

    if not report.supports.get("patch"):
        report.suggestions.append('The app does not announce PATCH: set update_method to "put".')
    if not report.supports.get("filter"):
        report.suggestions.append(
            "The app cannot filter users: existing accounts cannot be found and linked, so turn off "
            '"create users" for apps that already have users, or expect duplicates.'
        )
    if report.supports.get("case_insensitive_username") is False:
        report.suggestions.append("The app matches userName case-sensitively: keep usernames in one case.")
    report.ok = all(check["ok"] for check in report.checks)
