"""Inbound SCIM 2.0 server (django-scim2) settings."""
