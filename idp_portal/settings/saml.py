"""SAML IdP (pysaml2) and SP (djangosaml2) settings."""
