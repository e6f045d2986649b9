"""The SOAP back-channel endpoint of single logout (protocol work in backchannel.py)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.saml_idp import backchannel, selectors, services
from apps.saml_idp.errors import SamlRequestError

_SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
_REFUSED_SIGNATURES = {"unsigned_request", "bad_signature", "weak_signature"}


def _soap_fault(message: str, status: int) -> HttpResponse:
    # A SOAP fault: the message could not be processed as a SAML request at all.
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="{ns}"><SOAP-ENV:Body>'
        "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>{text}</faultstring></SOAP-ENV:Fault>"
        "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).format(ns=backchannel.SOAP_ENV_NS, text=message.replace("&", "&amp;").replace("<", "&lt;"))
    return HttpResponse(body.encode(), status=status, content_type=_SOAP_CONTENT_TYPE)


@csrf_exempt
@require_POST
def slo_soap(request: HttpRequest, slug: str) -> HttpResponse:
    """A LogoutRequest over SOAP from the app's server: end the named sessions, answer in SOAP."""
    connector = selectors.sso_connector(slug)
    if connector is None:
        return _soap_fault("There is no app with SAML sign-in at this address.", 404)
    body = request.body
    if len(body) > settings.SAML_IDP_MAX_MESSAGE_BYTES:
        return _soap_fault("The SOAP message is too large.", 413)
    key = services.connector_key(connector)
    try:
        info = backchannel.parse_soap_logout_request(connector, key, body, settings.SAML_IDP_MAX_MESSAGE_BYTES)
    except SamlRequestError as error:
        services.slo_record_refusal(connector=connector, user=None, error=error)
        return _soap_fault(error.message, 403 if error.reason in _REFUSED_SIGNATURES else error.http_status)
    answer = backchannel.slo_backchannel(connector=connector, key=key, info=info)
    response = HttpResponse(answer, content_type=_SOAP_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
