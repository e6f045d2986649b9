"""djangosaml2's authentication backend, with the portal's matching rules (apps.saml_sp.services)."""

from typing import Any

from django.http import HttpRequest
from djangosaml2.backends import Saml2Backend

from apps.directory.models import User
from apps.saml_sp import services
from apps.saml_sp.selectors import upstream_by_slug

# Why the last upstream assertion was refused; the ACS view audits it.
REFUSAL_ATTRIBUTE = "saml_sp_refusal"


class UpstreamSaml2Backend(Saml2Backend):
    """Finds (or creates, when the upstream allows) the directory user an assertion names.

    The upstream comes from the URL the assertion arrived at; matching, just-in-time creation and
    the refusal of suspended users are the upstream's rules in services.match_user. Existing
    users are never updated from assertions: the directory (and its SCIM/API writers) owns them.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        session_info: dict[str, Any] | None = None,
        attribute_mapping: dict | None = None,
        create_unknown_user: bool = False,
        assertion_info: dict | None = None,
        **kwargs: Any,
    ) -> User | None:
        if request is None or session_info is None or "ava" not in session_info:
            return None
        slug = getattr(getattr(request, "resolver_match", None), "kwargs", {}).get("slug", "")
        upstream = upstream_by_slug(slug) if slug else None
        if upstream is None:
            return None
        try:
            user, _created = services.match_user(upstream, session_info)
        except services.UpstreamRefused as refusal:
            setattr(request, REFUSAL_ATTRIBUTE, refusal)
            return None
        return user
