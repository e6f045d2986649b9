"""End-user sign-in and sign-out."""

from django.contrib.auth import views as auth_views

from apps.portal.forms import PortalAuthenticationForm


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PortalAuthenticationForm
    redirect_authenticated_user = False


class PortalLogoutView(auth_views.LogoutView):
    template_name = "portal/logged_out.html"
