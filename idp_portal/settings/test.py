"""Test settings: the environment's database and broker, fast password hashing."""

import os
import uuid

from idp_portal.settings import *  # noqa: F403
from idp_portal.settings.base import DATABASES, VAR_DIR

# Argon2 is the product's hasher (tests/directory/test_passwords.py asserts it); most tests
# set passwords only to have one, and MD5 keeps them fast.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a real Celery worker process can open the test database;
    # one per test process, so that two pytest runs on one checkout never share (and corrupt) it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}

OUTBOUND_ALLOW_LOOPBACK = True

# Each test process has its own queue, so that tasks enqueued by tests reach only the worker
# that the same process started (and never a developer's running worker).
CELERY_TASK_DEFAULT_QUEUE = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
