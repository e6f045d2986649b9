"""Consistency checks on a connector: settings that each pass validation but together go wrong.

Each check returns warnings in plain words, shown on the connector's overview and before it is
activated. Reads only: a check never generates a key or changes a row.
"""

from collections.abc import Callable
from dataclasses import dataclass

from apps.connectors.catalog import get_template
from apps.connectors.models import Connector, MappingKind, NameIdFormat, NameIdProperty, SignatureAlgorithm
from apps.connectors.selectors import users_in_scope


class Level:
    ERROR = "error"  # sign-in or provisioning cannot work: activation waits until it is fixed
    WARNING = "warning"  # works, but will hurt someone later
    INFO = "info"


@dataclass(frozen=True)
class CheckResult:
    code: str
    level: str
    message: str
    tab: str = ""  # the connector tab where it is fixed
    # The recommended change, applied by one click (apps.connectors.services.connector_apply_fix):
    # connector_update's arguments, and what it does in words.
    fix: dict | None = None
    fix_label: str = ""

    @property
    def blocks_activation(self) -> bool:
        return self.level == Level.ERROR


# The NameID format that suits each source of the NameID.
_NAMEID_FORMAT_FOR = {
    NameIdProperty.EMAIL: NameIdFormat.EMAIL,
    NameIdProperty.ID: NameIdFormat.PERSISTENT,
    NameIdProperty.USERNAME: NameIdFormat.UNSPECIFIED,
    NameIdProperty.EMPLOYEE_ID: NameIdFormat.UNSPECIFIED,
}


def _account_match(connector: Connector) -> str:
    template = get_template(connector.template) if connector.template else None
    return template.account_match if template else "userName"


def _nameid_vs_scim(connector: Connector) -> list[CheckResult]:
    if not (connector.has_sso and connector.has_provisioning):
        return []
    sso = connector.sso
    # Each NameID source property has the name of the mapping source that gives the same value.
    nameid_source = sso.nameid_property if sso.nameid_property in NameIdProperty.values else None
    by_email = _account_match(connector) == "email"
    sources = {}
    for mapping in connector.mappings.filter(kind=MappingKind.SCIM_USER):
        target = mapping.target.strip().lower()
        if target in ("username", "externalid") or (by_email and target.startswith("emails")):
            sources.setdefault("emails" if target.startswith("emails") else target, mapping.source.strip())
    user_name, external_id = sources.get("username"), sources.get("externalid")
    if nameid_source is None or user_name is None or nameid_source in sources.values():
        return []
    if "emails" in sources:
        return []  # the app ties sign-ins to accounts by the email both carry, whatever the NameID
    nameid_label = NameIdProperty(sso.nameid_property).label.lower()
    fix, fix_label = None, ""
    if user_name in NameIdProperty.values:
        fix = {"sso": {"nameid_property": user_name, "nameid_format": _NAMEID_FORMAT_FOR[NameIdProperty(user_name)]}}
        fix_label = (
            f"Use the {NameIdProperty(user_name).label.lower()} as the NameID (format "
            f"{NameIdFormat(fix['sso']['nameid_format']).label.lower()}), as provisioning's userName does"
        )
    return [
        CheckResult(
            "nameid_scim_mismatch",
            Level.WARNING,
            f"Sign-in identifies people by their {nameid_label} (SAML NameID), but provisioning creates their "
            f"account with userName = {user_name}"
            + (f" and externalId = {external_id}" if external_id else "")
            + ". The app cannot tell that the two are the same person: when a value changes, it may create a "
            "second account. Use the same property for the NameID and for userName (or externalId).",
            "sso",
            fix=fix,
            fix_label=fix_label,
        )
    ]


def _sso_settings(connector: Connector) -> list[CheckResult]:
    if not connector.has_sso:
        return []
    sso = connector.sso
    results = []
    if not sso.sp_entity_id or not sso.acs_urls:
        missing = " and ".join(
            name for name, value in (("SP entity ID", sso.sp_entity_id), ("ACS URL", sso.acs_urls)) if not value
        )
        results.append(
            CheckResult(
                "sso_incomplete",
                Level.ERROR,
                f"Single sign-on has no {missing} yet: upload the app's SP metadata or fill them in.",
                "sso",
            )
        )
    if sso.signature_algorithm == SignatureAlgorithm.RSA_SHA1 or sso.allow_sha1:
        results.append(
            CheckResult(
                "sha1_allowed",
                Level.WARNING,
                "SHA-1 signatures are allowed for this app. SHA-1 is broken: use RSA-SHA256 unless the app accepts "
                "nothing else.",
                "sso",
            )
        )
    return results


def _oidc_settings(connector: Connector) -> list[CheckResult]:
    if not connector.has_oidc:
        return []
    oidc = connector.oidc
    results = []
    if not oidc.redirect_uris:
        where = f" ({oidc.redirect_uri_pattern})" if oidc.redirect_uri_pattern else ""
        results.append(
            CheckResult(
                "oidc_no_redirect_uri",
                Level.ERROR,
                f"Sign-in has no redirect URI yet: add the one the app sends{where}.",
                "oidc",
            )
        )
    if not oidc.is_public and not oidc.client_secret_hash:
        results.append(
            CheckResult("oidc_no_secret", Level.ERROR, "The confidential client has no secret: rotate one.", "oidc")
        )
    if not oidc.frontchannel_logout_uri:
        results.append(
            CheckResult(
                "oidc_no_frontchannel_logout",
                Level.INFO,
                "No front-channel logout URI: signing out of the portal revokes this app's tokens, but the app "
                "keeps its own session until it expires.",
                "oidc",
            )
        )
    return results


def _assignments(connector: Connector) -> list[CheckResult]:
    if not users_in_scope(connector).exists():
        what = (
            "sign in to"
            if connector.has_sso or connector.has_oidc
            else ("be provisioned to" if connector.has_provisioning else "see")
        )
        return [
            CheckResult(
                "no_users_assigned",
                Level.WARNING,
                f"No user is assigned (directly or through a group), so nobody can {what} this app.",
                "assignments",
            )
        ]
    return []


def _provisioning(connector: Connector) -> list[CheckResult]:
    if not connector.has_provisioning:
        return []
    provisioning = connector.provisioning
    if not provisioning.enabled:
        return [
            CheckResult(
                "im_off",
                Level.INFO,
                "Identity Management is off: users are not created, updated or deactivated in the app.",
                "identity",
            )
        ]
    results = []
    if not provisioning.base_url:
        results.append(CheckResult("im_no_url", Level.ERROR, "Identity Management has no SCIM base URL.", "identity"))
    if not provisioning.token_set:
        results.append(
            CheckResult(
                "im_no_token",
                Level.ERROR,
                "Identity Management is on but no bearer token is set: every request would be refused.",
                "identity",
            )
        )
    if not provisioning.operations:
        results.append(
            CheckResult(
                "im_no_operations",
                Level.WARNING,
                "Identity Management is on but every operation is off: nothing is sent to the app.",
                "identity",
            )
        )
    if provisioning.paused:
        reason = f" ({provisioning.paused_reason})" if provisioning.paused_reason else ""
        results.append(
            CheckResult(
                "im_paused",
                Level.WARNING,
                f"Provisioning is paused{reason}: changes wait until it is resumed.",
                "provisioning",
            )
        )
    return results


# Checks that other apps contribute (the SAML IdP's signing key, ...), registered in their
# AppConfig.ready() as Django's own system checks are, so that this app imports none of them.
_registered: list[Callable[[Connector], list[CheckResult]]] = []


def register_check(check: Callable[[Connector], list[CheckResult]]) -> Callable[[Connector], list[CheckResult]]:
    if check not in _registered:
        _registered.append(check)
    return check


def connector_checks(connector: Connector) -> list[CheckResult]:
    """Every warning for the connector, errors first."""
    results = [
        *_sso_settings(connector),
        *_oidc_settings(connector),
        *_nameid_vs_scim(connector),
        *(result for check in _registered for result in check(connector)),
        *_provisioning(connector),
        *_assignments(connector),
    ]
    order = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}
    return sorted(results, key=lambda result: order[result.level])
