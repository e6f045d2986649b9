from django.urls import path

from apps.portal import views

app_name = "portal"
urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("login/mfa/", views.mfa, name="mfa"),
    path("login/mfa/passkey/", views.mfa_passkey, name="mfa_passkey"),
    path("logout/", views.sign_out, name="logout"),
    path("account/", views.profile, name="profile"),
    path("account/password/", views.password_change, name="password_change"),
    path("account/confirm/", views.confirm_password, name="confirm_password"),
    path("account/mfa/totp/", views.totp_setup, name="totp_setup"),
    path("account/mfa/totp/remove/", views.totp_remove, name="totp_remove"),
    path("account/mfa/passkeys/add/", views.passkey_add, name="passkey_add"),
    path("account/mfa/passkeys/<int:pk>/remove/", views.passkey_remove, name="passkey_remove"),
    path("account/mfa/recovery-codes/", views.recovery_codes_regenerate, name="recovery_codes"),
    path("account/sessions/end-all/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password-reset/done/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
