"""gunicorn settings of the image (the Dockerfile's CMD names this file).

X-Forwarded-Proto (and gunicorn's other scheme headers) is believed only from the reverse proxies
the portal itself trusts: the same TRUSTED_PROXIES variable (addresses or networks, comma-separated)
that idp_portal.settings reads for X-Forwarded-For. Unset, no peer may set them.
"""

import os

forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "")
