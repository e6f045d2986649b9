"""SAML 2.0 and XML-DSig identifiers used across the IdP."""

PROTOCOL_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
METADATA_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

NAMEID_FORMATS = {
    "email": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
NAMEID_FORMAT_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_VERSION_MISMATCH = "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch"
STATUS_REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
STATUS_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
STATUS_REQUEST_UNSUPPORTED = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
STATUS_UNSUPPORTED_BINDING = "urn:oasis:names:tc:SAML:2.0:status:UnsupportedBinding"
STATUS_INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"

CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
AC_PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 - a SAML URN, not a password

# Signature and digest algorithms by the names the connector settings use.
SIGNATURE_ALGORITHMS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
}
DIGEST_ALGORITHMS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
}
# What an SP may sign its requests with: SHA-1 is refused whatever the connector says.
ACCEPTED_SIGNATURE_ALGORITHMS = frozenset(
    SIGNATURE_ALGORITHMS[name] for name in ("rsa-sha256", "rsa-sha384", "rsa-sha512")
)
ACCEPTED_DIGEST_ALGORITHMS = frozenset(DIGEST_ALGORITHMS[name] for name in ("rsa-sha256", "rsa-sha384", "rsa-sha512"))
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
