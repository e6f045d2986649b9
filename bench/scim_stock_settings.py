"""Minimal settings for the stock django-scim2 baseline of bench/scim_server.py: django-scim2's own
views, adapters and filter parser over Django's default User and Group models."""

import os

import dj_database_url

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "scim_stock_urls"
DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "localhost",
    "AUTHENTICATION_SCHEMES": [{"type": "oauth2", "name": "none", "description": "benchmark"}],
    "USER_ADAPTER": "scim_stock_adapters.StockUser",
    "GROUP_ADAPTER": "scim_stock_adapters.StockGroup",
    # Stock's default check is evaluated (session and user read), then every request is let in.
    "GET_IS_AUTHENTICATED_PREDICATE": "scim_stock_adapters.default_check_then_let_in",
}
