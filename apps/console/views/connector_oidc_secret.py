"""The page that shows an OpenID Connect client secret, once: after creating a connector with a
confidential client, switching it to confidential, or rotating its secret."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.connectors.models import Connector


def oidc_secret_page(request: HttpRequest, connector: Connector, secret: str, continue_url: str) -> HttpResponse:
    context = {
        "nav": "connectors",
        "connector": connector,
        "secret": secret,
        "client_id": connector.oidc.client_id,
        "previous_valid_until": connector.oidc.previous_secret_expires,
        "continue_url": continue_url,
    }
    response = render(request, "console/connectors/oidc_secret.html", context)
    response["Cache-Control"] = "no-store"
    return response
