"""djangosaml2's views, bound to one upstream IdP by the URL, ending in the portal's sign-in rules.

After the assertion is verified, `apps.portal.services.first_factor_passed` decides what comes
next (the portal's second factor, enrolment, or the page the person came from): an upstream
sign-in is a first factor like a password, and it is audited like one.
"""

from typing import Any

from django.contrib import auth
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from djangosaml2 import views as saml2_views
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.response import UnsolicitedResponse

from apps.audit.services import audit_record
from apps.common.security_headers import allow_frames_and_forms
from apps.portal import services as portal_services
from apps.portal.sign_out_steps import SignOutStep
from apps.portal.views import end_session_page
from apps.saml_sp import logout, sessions
from apps.saml_sp.assertions import AssertionRefused, check_response, wire_facts
from apps.saml_sp.backends import REFUSAL_ATTRIBUTE
from apps.saml_sp.conf import sp_metadata_xml, sp_urls
from apps.saml_sp.selectors import upstream_by_slug
from apps.saml_sp.sessions import remember_subject

BACKEND = "apps.saml_sp.backends.UpstreamSaml2Backend"


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
        """The checks pysaml2 leaves to us (apps.saml_sp.assertions): SHA-1, InResponseTo, Destination,
        Recipient, audience, age, and each assertion accepted once."""
        upstream = upstream_by_slug(self.request.resolver_match.kwargs["slug"])
        try:
            checked = check_response(upstream, response)
        except AssertionRefused as refusal:
            # djangosaml2 turns any exception here into a generic one; keep ours for the audit.
            self.refusal = refusal
            raise
        with transaction.atomic():
            audit_record(
                actor=None,
                actor_label=f"saml_sp:{upstream.slug}",
                action="saml_sp.response",
                target=upstream,
                after={
                    "assertion_id": checked.assertion_id,
                    "solicited": checked.solicited,
                    "wire": wire_facts(self.request.POST.get("SAMLResponse", "")),
                },
            )

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
        # After first_factor_passed, which may have ended another person's session on this browser.
        remember_subject(request, upstream_by_slug(slug), session_info)
        return user

    def custom_redirect(self, user: Any, relay_state: str, session_info: dict) -> str:
        return self.portal_redirect

    def handle_acs_failure(
        self, request: HttpRequest, exception: Exception | None = None, status: int = 403, **kwargs: Any
    ) -> HttpResponse:
        if isinstance(exception, PermissionDenied) and exception.args:
            return _refusal_page(request, str(exception.args[0]), status)
        slug = request.resolver_match.kwargs.get("slug", "") if request.resolver_match else ""
        refusal = getattr(self, "refusal", None)
        if refusal is not None:
            reason, detail = refusal.reason, str(refusal)
        elif isinstance(exception, UnsolicitedResponse):
            reason, detail = "idp_initiated_refused", type(exception).__name__
        else:
            reason, detail = "invalid_response", type(exception).__name__
        with transaction.atomic():
            audit_record(
                actor=None,
                actor_label=f"saml_sp:{slug}",
                action="portal.login.failure",
                target_label=f"upstream {slug}",
                after={"reason": reason, "method": f"saml:{slug}", "error": detail[:300]},
            )
        if reason == "idp_initiated_refused":
            message = (
                "This portal accepts sign-ins from your organisation only when they start here. "
                "Use the portal's sign-in page."
            )
        else:
            message = (
                "The answer from your organisation's sign-in could not be accepted (it was invalid, expired or "
                "already used). Please start again."
            )
        return _refusal_page(request, message, status)


class UpstreamMetadataView(View):
    """The portal's SP metadata for one upstream IdP, to paste into (or fetch from) that IdP:
    ACS, SLO, and delegated login's certificates with the encryption algorithms it reads."""

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        upstream = upstream_by_slug(slug)
        if upstream is None:
            raise Http404("No upstream identity provider at this address.")
        return HttpResponse(sp_metadata_xml(upstream), content_type="application/samlmetadata+xml; charset=utf-8")


@method_decorator(csrf_exempt, name="dispatch")
class UpstreamSloView(View):
    """Single logout with the upstream: its LogoutResponse to our LogoutRequest (we signed out), or
    its own LogoutRequest (HTTP-Redirect or HTTP-POST; cross-site, so no CSRF token)."""

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        return self._handle(request, slug, BINDING_HTTP_REDIRECT, request.GET)

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        return self._handle(request, slug, BINDING_HTTP_POST, request.POST)

    def _handle(self, request: HttpRequest, slug: str, binding: str, data: Any) -> HttpResponse:
        upstream = upstream_by_slug(slug)
        if upstream is None:
            raise Http404("No upstream identity provider at this address.")
        try:
            incoming = logout.parse_incoming(
                upstream,
                binding=binding,
                parameters={key: data[key] for key in ("SAMLRequest", "SAMLResponse", "RelayState") if key in data},
                raw_query=request.META.get("QUERY_STRING", ""),
                slo_url=sp_urls(upstream)["slo"],
            )
        except logout.LogoutMessageError as refusal:
            with transaction.atomic():
                audit_record(
                    actor=None,
                    actor_label=f"saml_sp:{slug}",
                    action="saml_sp.slo.refused",
                    target=upstream,
                    after={"reason": refusal.reason, "detail": str(refusal)[:300]},
                )
            return _refusal_page(request, "This sign-out message could not be accepted.", 400)
        if incoming.kind == "response":
            confirmed = sessions.logout_response_received(request, upstream, incoming)
            context = {"upstream": upstream, "confirmed": confirmed}
            response = render(request, "saml_sp/signed_out.html", context)
            response["Cache-Control"] = "no-store"
            return response
        decision = sessions.upstream_logout_requested(request, upstream, incoming)
        answer = decision.answer
        then = SignOutStep(name=upstream.name, url=answer.url, fields=answer.fields) if answer else None
        if decision.end_session:
            return end_session_page(request, then=then)
        if then is None:
            return render(request, "saml_sp/signed_out.html", {"upstream": upstream, "kept": True})
        if not then.fields:
            return HttpResponseRedirect(then.url)
        page = render(request, "saml_sp/post_binding_form.html", {"target_url": then.url, "params": then.fields})
        return allow_frames_and_forms(page, [then.origin])
