"""Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport (no server needed)."""

from datetime import timedelta

from idp_portal.settings.base import VAR_DIR
from idp_portal.settings.env import env_int, env_str

REDIS_URL = env_str("REDIS_URL")

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport with a fix: a worker busy with a task no longer dies when Redis goes
    # away (apps/common/broker.py says why it did).
    CELERY_BROKER_TRANSPORT = "apps.common.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task delayed longer than this is delivered twice by Redis; long waits are parked
        # in the database instead of being scheduled as countdowns.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # A broker that vanishes without closing the socket (failover, NAT, firewall) must not
        # leave a publish or a BRPOP waiting forever: bounded reads, keepalives, health checks.
        "socket_timeout": 10,
        "socket_connect_timeout": 3,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }
else:
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "idp-portal")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker and beat wait for the broker as long as it is away (the default gives up after 100 tries,
# and the worker exits); meanwhile changes wait in the outbox, and the sweep re-enqueues them after.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the broker goes keeps running: it records what it delivered in the database,
# so the copy Redis hands out again finds nothing left to send. Cancelling it mid-request could
# leave a change sent but not recorded, then sent twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 55)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60)
# Celery's Django fixup closes the database connection around every task unless this is set:
# reopening it costs more than a small task itself. Connections are still checked before each task
# (`close_old_connections`) and renewed every CELERY_DB_REUSE_MAX tasks.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))
# Outbound provisioning: see apps/provisioning/batch.py (the loop) and its neighbours.
PROVISIONING_LEASE_SECONDS = env_int("PROVISIONING_LEASE_SECONDS", 120)
PROVISIONING_TASK_BUDGET_SECONDS = env_int("PROVISIONING_TASK_BUDGET_SECONDS", 45)
PROVISIONING_MAX_ATTEMPTS = env_int("PROVISIONING_MAX_ATTEMPTS", 12)
PROVISIONING_RETRY_BASE_SECONDS = float(env_int("PROVISIONING_RETRY_BASE_MS", 1000)) / 1000
PROVISIONING_RETRY_MAX_SECONDS = env_int("PROVISIONING_RETRY_MAX_SECONDS", 600)
# A connector's task holds a flag in Redis while it is queued or running (one task per burst of
# changes); it expires by itself if the worker dies, so it must outlast the task's budget.
PROVISIONING_KICK_TTL = max(env_int("PROVISIONING_KICK_TTL", 60), PROVISIONING_TASK_BUDGET_SECONDS)
# Once done, a task waits this long for another change before it ends (Redis only, queue empty);
# kept under the 2 s socket timeout of the Redis client it waits on.
PROVISIONING_LINGER_SECONDS = min(float(env_int("PROVISIONING_LINGER_MS", 1500)) / 1000, 1.9)
# Tasks working on one connector at once when it has a large backlog (the main task and helpers).
PROVISIONING_TASKS_PER_CONNECTOR = env_int("PROVISIONING_TASKS_PER_CONNECTOR", 2)
# Objects claimed at once; a full batch is what makes a task ask for helpers.
PROVISIONING_BATCH_SIZE = env_int("PROVISIONING_BATCH_SIZE", 100)
# A connector's rate limit spaces its requests so that `rate` of them span a second plus this margin:
# room for a request that leaves a few milliseconds late (apps/provisioning/ratelimit.py).
PROVISIONING_RATE_WINDOW_MARGIN_MS = env_int("PROVISIONING_RATE_WINDOW_MARGIN_MS", 50)
PROVISIONING_SWEEP_SECONDS = env_int("PROVISIONING_SWEEP_SECONDS", 15)
# A full sync records its events this many objects per transaction: each transaction holds that
# many links locked, against the workers' flushes and the directory's changes (outbox.record_full_sync).
PROVISIONING_FULL_SYNC_CHUNK = env_int("PROVISIONING_FULL_SYNC_CHUNK", 10000)
# Retries due sooner than this ride on a Celery countdown; later ones wait in the database.
PROVISIONING_MAX_COUNTDOWN_SECONDS = min(
    env_int("PROVISIONING_MAX_COUNTDOWN_SECONDS", 300),
    CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600) // 2,
)

CELERY_BEAT_SCHEDULE = {
    "provisioning-sweep": {
        "task": "provisioning.sweep",
        "schedule": timedelta(seconds=PROVISIONING_SWEEP_SECONDS),
        "options": {"expires": PROVISIONING_SWEEP_SECONDS},
    },
    # The exact row counters' deltas folded into one row per bucket (apps.common.rowcounts).
    "compact-row-counts": {
        "task": "common.compact_row_counts",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    "worker-heartbeat": {
        "task": "common.record_worker_heartbeat",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    "sp-metadata-refresh": {
        "task": "connectors.refresh_sp_metadata",
        "schedule": timedelta(seconds=env_int("SP_METADATA_REFRESH_CHECK_SECONDS", 300)),
        "options": {"expires": env_int("SP_METADATA_REFRESH_CHECK_SECONDS", 300)},
    },
    "oidc-housekeeping": {
        "task": "oidc.housekeeping",
        "schedule": timedelta(minutes=30),
        "options": {"expires": 1800},
    },
    "audit-prune": {
        "task": "audit.prune",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    "saml-trace-expire": {
        "task": "saml_idp.trace_expire",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 600},
    },
}
