"""Thin Celery wrappers for the SAML IdP."""

from celery import shared_task

from apps.saml_idp import tracer


@shared_task(name="saml_idp.trace_expire", ignore_result=True)
def trace_expire() -> None:
    """Captured SAML messages hold personal data: delete them once past their retention."""
    tracer.trace_expire()
