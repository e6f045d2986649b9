# The scim2-server downstream of the provisioning tests, for the console's walk-through.
from tests.provisioning.conftest import scim_downstream, scim_downstream_session  # noqa: F401
