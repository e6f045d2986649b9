"""djangosaml2's views, bound to one upstream IdP by the URL, ending in the portal's sign-in rules.

After the assertion is verified, `apps.portal.services.first_factor_passed` decides what comes
next (the portal's second factor, enrolment, or the page the person came from): an upstream
sign-in is a first factor like a password, and it is audited like one.
"""

from typing import Any

from django.contrib import auth
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from djangosaml2 import views as saml2_views

from apps.audit.services import audit_record
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.portal import services as portal_services
from apps.saml_sp.backends import REFUSAL_ATTRIBUTE
from apps.saml_sp.selectors import upstream_by_slug

BACKEND = "apps.saml_sp.backends.UpstreamSaml2Backend"
_DS = "http://www.w3.org/2000/09/xmldsig#"
_SHA1_ALGORITHMS = frozenset({"http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"})


def _refusal_page(request: HttpRequest, message: str, status: int) -> HttpResponse:
    slug = request.resolver_match.kwargs.get("slug", "") if request.resolver_match else ""
    upstream = upstream_by_slug(slug)
    response = render(request, "saml_sp/error.html", {"message": message, "upstream": upstream}, status=status)
    response["Cache-Control"] = "no-store"
    return response


class UpstreamLoginView(saml2_views.LoginView):
    """Send the person to the upstream IdP with an AuthnRequest; `next` survives as RelayState.

    HTTP-Redirect is preferred (SAML_DEFAULT_BINDING); an IdP that only takes HTTP-POST gets our
    own auto-posting page, whose script is a static file (djangosaml2's has an inline script,
    which the portal's Content-Security-Policy forbids).
    """

    post_binding_form_template = "saml_sp/post_binding_form.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        query = request.GET.copy()
        query["next"] = portal_services.safe_next(query.get("next"))
        # The upstream is chosen by the URL, never by a parameter.
        query.pop("idp", None)
        request.GET = query
        return super().get(request, *args, **kwargs)


class UpstreamAcsView(saml2_views.AssertionConsumerServiceView):
    """Verify the upstream's Response (djangosaml2/pysaml2), then sign in the portal's way."""

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:  # type: ignore[override]
        # The slug chose the upstream (conf.config_loader reads it from the URL); djangosaml2's
        # own arguments keep their defaults (no settings-wide attribute mapping, no creation).
        return super().post(request)

    def custom_validation(self, response: Any) -> None:
        """Refuse SHA-1 signatures and digests, which pysaml2 accepts (SHA-1 signatures can be forged)."""
        try:
            root = parse_untrusted_xml(
                response.xmlstr if isinstance(response.xmlstr, bytes) else response.xmlstr.encode()
            )
        except UnsafeXMLError as exc:
            raise ValueError(str(exc)) from exc
        algorithms = {
            element.get("Algorithm", "") for element in root.iter(f"{{{_DS}}}SignatureMethod", f"{{{_DS}}}DigestMethod")
        }
        weak = algorithms & _SHA1_ALGORITHMS
        if weak:
            raise ValueError(f"The upstream IdP signed with SHA-1 ({', '.join(sorted(weak))}).")

    def authenticate_user(
        self,
        request: HttpRequest,
        session_info: dict,
        attribute_mapping: dict,
        create_unknown_user: bool,
        assertion_info: dict,
    ) -> Any:
        slug = request.resolver_match.kwargs["slug"]
        user = auth.authenticate(
            request=request,
            session_info=session_info,
            attribute_mapping=attribute_mapping,
            create_unknown_user=create_unknown_user,
            assertion_info=assertion_info,
        )
        if user is None:
            refusal = getattr(request, REFUSAL_ATTRIBUTE, None)
            reason = (
                refusal.reason
                if refusal
                else ("locked_out" if getattr(request, "axes_locked_out", False) else "refused")
            )
            with transaction.atomic():
                audit_record(
                    actor=None,
                    actor_label=f"saml_sp:{slug}",
                    action="portal.login.failure",
                    target_label=f"upstream {slug}",
                    after={"reason": reason, "method": f"saml:{slug}", "issuer": session_info.get("issuer", "")},
                )
            raise PermissionDenied(refusal.message if refusal else "This sign-in was refused.")
        self.portal_redirect = portal_services.first_factor_passed(
            request, user, backend=BACKEND, method=f"saml:{slug}", next_url=self.build_relay_state()
        )
        return user

    def custom_redirect(self, user: Any, relay_state: str, session_info: dict) -> str:
        return self.portal_redirect

    def handle_acs_failure(
        self, request: HttpRequest, exception: Exception | None = None, status: int = 403, **kwargs: Any
    ) -> HttpResponse:
        if isinstance(exception, PermissionDenied) and exception.args:
            return _refusal_page(request, str(exception.args[0]), status)
        slug = request.resolver_match.kwargs.get("slug", "") if request.resolver_match else ""
        with transaction.atomic():
            audit_record(
                actor=None,
                actor_label=f"saml_sp:{slug}",
                action="portal.login.failure",
                target_label=f"upstream {slug}",
                after={"reason": "invalid_response", "method": f"saml:{slug}", "error": type(exception).__name__},
            )
        return _refusal_page(
            request,
            "The answer from your organisation's sign-in could not be accepted (it was invalid, expired or "
            "already used). Please start again.",
            status,
        )


class UpstreamMetadataView(saml2_views.MetadataView):
    """The portal's SP metadata for one upstream IdP, to paste into (or fetch from) that IdP."""
