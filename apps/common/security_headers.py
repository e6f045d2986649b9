"""Security headers on every response (pages, API, SCIM).

Django 5.2 has no Content-Security-Policy of its own. The portal's pages carry no inline script
at all (their JavaScript is in static/portal/), so the policy needs neither nonces nor
'unsafe-inline'. Two kinds of page that other apps render need a little more, given per path:

- /saml/idp/ answers with pages that post a SAML message to the app by themselves
  (`apps.saml_idp.bindings.auto_post_form`, `<body onload="document.forms[0].submit()">`):
  that one handler is allowed by its hash ('unsafe-hashes' admits only handlers whose exact
  text is hashed), and form-action is left open because the form goes to the app's own host.
- /api/v1/docs is drf-spectacular's Swagger UI, whose template has one inline <script>
  (generated per deployment): its hash is computed from the page itself, so that one script
  runs and nothing else inline does. Swagger UI sets inline style attributes, so that page
  alone allows inline styles. (drf-spectacular's SpectacularSwaggerSplitView would serve the
  script as a file and make this exemption unnecessary.)

A view may widen frame-src and form-action for its own response with `allow_frames_and_forms`
(the sign-out page frames and posts to the apps it signs the user out of).
"""

import base64
import hashlib
import re
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_AUTO_POST_HANDLER = "document.forms[0].submit()"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_EXTRA_ATTRIBUTE = "portal_csp_extra"


def _sha256(source: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source).digest()).decode() + "'"


def _base_policy() -> dict[str, list[str]]:
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "https:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-src": ["'none'"],
        "frame-ancestors": ["'none'"],
    }


def allow_frames_and_forms(response: HttpResponse, origins: Iterable[str]) -> HttpResponse:
    """Let this response frame and post forms to `origins` (scheme://host[:port] each)."""
    setattr(response, _EXTRA_ATTRIBUTE, sorted(set(origins)))
    return response


_SAME_ORIGIN_FRAMING_ATTRIBUTE = "_portal_frame_ancestors_self"


def allow_same_origin_framing(response: HttpResponse) -> HttpResponse:
    """Let a page of this portal show this response in a frame (and nobody else)."""
    setattr(response, _SAME_ORIGIN_FRAMING_ATTRIBUTE, True)
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response


def policy_for(request: HttpRequest, response: HttpResponse) -> str:
    policy = _base_policy()
    path = request.path
    if path.startswith("/saml/idp/"):
        policy["script-src"] += ["'unsafe-hashes'", _sha256(_AUTO_POST_HANDLER.encode())]
        del policy["form-action"]
    elif path.startswith("/saml/sp/"):
        # The AuthnRequest to the upstream IdP may be an auto-posted form to the IdP's host.
        del policy["form-action"]
    elif path.rstrip("/") == "/api/v1/docs" and not response.streaming:
        policy["script-src"] += [_sha256(body) for body in _INLINE_SCRIPT.findall(response.content)]
        policy["style-src"].append("'unsafe-inline'")
        policy["img-src"].append("data:")
    if getattr(response, _SAME_ORIGIN_FRAMING_ATTRIBUTE, False):
        policy["frame-ancestors"] = ["'self'"]
    extra = getattr(response, _EXTRA_ATTRIBUTE, None)
    if extra:
        policy["frame-src"] = list(extra)
        policy["form-action"] = ["'self'", *extra]
    return "; ".join(f"{name} {' '.join(values)}" for name, values in policy.items())


class SecurityHeadersMiddleware:
    """CSP, nosniff, Referrer-Policy and no framing, on every response (API and SCIM included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = "Content-Security-Policy-Report-Only" if settings.PORTAL_CSP_REPORT_ONLY else "Content-Security-Policy"
        response[header] = policy_for(request, response)
        response.setdefault("X-Content-Type-Options", "nosniff")
        response.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
        response.setdefault("X-Frame-Options", "DENY")
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
