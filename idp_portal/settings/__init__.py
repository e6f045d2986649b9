"""Settings, split by concern. Every value that differs between deployments comes from the environment."""

from idp_portal.settings.base import *  # noqa: F403
from idp_portal.settings.celery import *  # noqa: F403
from idp_portal.settings.oidc import *  # noqa: F403
from idp_portal.settings.portal import *  # noqa: F403
from idp_portal.settings.saml import *  # noqa: F403
from idp_portal.settings.scim import *  # noqa: F403
