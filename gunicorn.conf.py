"""gunicorn settings of the image (the Dockerfile's CMD names this file; bench/saml_sso.py runs the
same file).

Two worker processes with four threads each: the threads only overlap database and Redis waits,
the processes use the cores. WEB_CONCURRENCY and GUNICORN_THREADS change them.

X-Forwarded-Proto (and gunicorn's other scheme headers) is believed only from the reverse proxies
the portal itself trusts: the same TRUSTED_PROXIES variable (addresses or networks, comma-separated)
that idp_portal.settings reads for X-Forwarded-For. Unset, no peer may set them.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
accesslog = "-"
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "")
