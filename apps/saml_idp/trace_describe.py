"""What the portal sent, described for the tracer: a Response and its assertion, in a few facts."""

from typing import Any

from lxml import etree

from apps.saml_idp.constants import (
    STATUS_SUCCESS,
)
from apps.saml_idp.trace_checks import INFO, WARN, problem, status_label, status_message, status_value
from apps.saml_idp.trace_xml import DS, SAML, SHA1_URIS, algorithm_label, element_text, signature_algorithms


def describe_response(root: etree._Element) -> tuple[dict, list[dict]]:
    """What a Response says (status, NameID, attributes, audience, signatures) and what to note."""
    summary: dict[str, Any] = {
        "destination": root.get("Destination") or "",
        "in_response_to": root.get("InResponseTo") or "",
    }
    problems: list[dict] = []
    summary["status"] = status_label(root)
    if status_value(root) != STATUS_SUCCESS:
        problems.append(problem(WARN, f"Error status sent: {summary['status']}", status_message(root)))
    response_signature, _ = signature_algorithms(root.find(f"{DS}Signature"))
    summary["response_signature"] = algorithm_label(response_signature) if response_signature else "not signed"
    if root.find(f"{SAML}EncryptedAssertion") is not None:
        summary["encrypted"] = True
        problems.append(
            problem(
                INFO,
                "Assertion encrypted for the app",
                "Its contents are not stored here; the assertion preview shows what it holds.",
            )
        )
    assertion = root.find(f"{SAML}Assertion")
    assertion_signature = ""
    if assertion is not None:
        assertion_signature, _ = signature_algorithms(assertion.find(f"{DS}Signature"))
        summary["assertion_signature"] = algorithm_label(assertion_signature) if assertion_signature else "not signed"
        summary.update(describe_assertion(assertion))
    if {response_signature, assertion_signature} & SHA1_URIS:
        problems.append(problem(WARN, "Signed with SHA-1", "RSA-SHA1 signatures can be forged."))
    return summary, problems


def describe_assertion(assertion: etree._Element) -> dict:
    name_id = assertion.find(f"{SAML}Subject/{SAML}NameID")
    confirmation = assertion.find(f"{SAML}Subject/{SAML}SubjectConfirmation/{SAML}SubjectConfirmationData")
    conditions = assertion.find(f"{SAML}Conditions")
    statement = assertion.find(f"{SAML}AuthnStatement")
    return {
        "name_id": element_text(name_id),
        "name_id_format": (name_id.get("Format") or "") if name_id is not None else "",
        "recipient": (confirmation.get("Recipient") or "") if confirmation is not None else "",
        "audience": element_text(assertion.find(f"{SAML}Conditions/{SAML}AudienceRestriction/{SAML}Audience")),
        "not_before": (conditions.get("NotBefore") or "") if conditions is not None else "",
        "not_on_or_after": (conditions.get("NotOnOrAfter") or "") if conditions is not None else "",
        "session_not_on_or_after": (statement.get("SessionNotOnOrAfter") or "") if statement is not None else "",
        "attributes": [
            {
                "name": attribute.get("Name") or "",
                "values": [element_text(value) for value in attribute.findall(f"{SAML}AttributeValue")],
            }
            for attribute in assertion.findall(f"{SAML}AttributeStatement/{SAML}Attribute")
        ],
    }
