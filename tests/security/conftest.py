"""The attacker's suite reuses the fixtures of the features it attacks (imported, not copied)."""

from tests.console.conftest import _fresh_cache  # noqa: F401
from tests.saml_idp.conftest import _fast_keys, connector, sp_factory, user  # noqa: F401
