"""Django settings. Every deployment-specific value comes from the environment.

Defaults are safe for the embedded demo: SQLite, files under ./media, and in-process task
execution when no REDIS_URL is given. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY,
MEDIA_ROOT and ALLOWED_HOSTS (see docker-compose.yml).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from spider_web.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Demo only: log every anonymous visitor in as the demo user. Refused unless DEBUG is on.
DEMO_AUTOLOGIN_USER = env_str("SPIDER_DEMO_AUTOLOGIN_USER")
if DEMO_AUTOLOGIN_USER and not DEBUG:
    raise ImproperlyConfigured("SPIDER_DEMO_AUTOLOGIN_USER is for the local demo and needs DEBUG=1")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotations",
    "inference",
    "spider_web",  # composes the two apps: the demo command, the project page's panels
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "annotations.middleware.DemoAutoLoginMiddleware",
    "annotations.middleware.LoginRequiredEverywhereMiddleware",
    "annotations.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "spider_web.urls"
WSGI_APPLICATION = "spider_web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A pooled connection that the server ended (restart, failover, idle kill) is
        # checked and replaced at its first use in a request, instead of costing a 500.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's database: the review page writes while it prefetches, so take the write
    # lock at BEGIN (no upgrade deadlocks), wait for it, and let readers run beside a writer.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE", "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Every login (page, API token, admin) goes through the throttle: after MAX_FAILURES wrong
# passwords for a username, or MAX_FAILURES_PER_ADDRESS from one client address, within
# LOCKOUT_SECONDS, that username or address is refused for LOCKOUT_SECONDS.
AUTHENTICATION_BACKENDS = ["spider_web.login_guard.ThrottledModelBackend"]
SPIDER_LOGIN_MAX_FAILURES = env_int("SPIDER_LOGIN_MAX_FAILURES", 5)
SPIDER_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("SPIDER_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
SPIDER_LOGIN_LOCKOUT_SECONDS = env_int("SPIDER_LOGIN_LOCKOUT_SECONDS", 900)
# Reverse proxies in front of the app that append the client to X-Forwarded-For (0: none,
# REMOTE_ADDR is the client).
SPIDER_TRUSTED_PROXIES = env_int("SPIDER_TRUSTED_PROXIES", 0)
# API tokens expire this long after they were issued (a new one is issued at the next login).
SPIDER_TOKEN_LIFETIME_SECONDS = env_int("SPIDER_TOKEN_LIFETIME_SECONDS", 30 * 86400)

# Mail (password reset links). Without EMAIL_HOST (or an explicit EMAIL_BACKEND) the reset
# page says this server cannot send mail, rather than pretending it sent a link.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "spider-web@localhost")
SPIDER_MAIL_CONFIGURED = bool(EMAIL_HOST or env_str("EMAIL_BACKEND"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# Tiles, exports, model heads and similarity indexes go through Django's storage API, under
# MEDIA_ROOT by default. Workers read tiles (embedding), weights and indexes (mmap) by local
# path, so on several hosts MEDIA_ROOT is one shared POSIX volume (NFS) mounted at the same
# path everywhere; an object store (django-storages' S3) has no paths and is not supported.
# SPIDER_STORAGE_BACKEND swaps the class (a FileSystemStorage subclass, say).
STORAGES = {
    "default": {
        "BACKEND": env_str("SPIDER_STORAGE_BACKEND",
                           "django.core.files.storage.FileSystemStorage"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Celery: a real broker when REDIS_URL is given; otherwise tasks run in-process (demo only).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Long GPU steps: each worker process reserves one message at a time (prefetch 1, with
# `-O fair` in docker-compose.yml), acknowledges it when done (acks_late) and a message whose
# worker died goes back to the queue (reject_on_worker_lost), for another worker to take.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"inference.tasks.embed_step": {"queue": "gpu"},
                      "inference.tasks.embed_chain": {"queue": "gpu"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT",
                                                                 3600)}
# Workers import torch and the embedding pipeline when they start (~5 s on 2 cores), not in
# their first step: a GPU worker joining a running job then claims tiles at once. The web
# tier never loads this list.
CELERY_IMPORTS = ["inference.modeling.pipeline"]

REST_FRAMEWORK = {
    # The token first: DRF answers an anonymous call with the first class's challenge, so a
    # script without credentials gets 401 (WWW-Authenticate: Token), not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "spider_web.token_auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "annotations.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SPIDER Web API",
    "DESCRIPTION": "Projects, classes, slides, patches and tiles of pathology patch datasets.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Errors every operation can answer (spider_web/schema.py), after the default hooks.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "spider_web.schema.document_errors"],
    # The schema and Swagger UI need a login like every other endpoint.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set, taken from the model's choices: a field name shared by several
    # choice sets ("status" of patches and of jobs) would otherwise get a hash-suffixed name.
    "ENUM_NAME_OVERRIDES": {
        "ReviewActionEnum": "annotations.models.ReviewAction",
        # The decision form lists the same actions by value (its labels are the values).
        "DecisionActionEnum": "annotations.models.ReviewAction.values",
        "PatchStatusEnum": "annotations.models.PatchStatus",
        "PatchSplitEnum": "annotations.models.Split",
        "JobStatusEnum": "annotations.models.TrackedJob.Status",
        "ImportJobKindEnum": "annotations.models.ImportJob.Kind",
        "ExportJobKindEnum": "annotations.models.ExportJob.Kind",
        "InferenceJobKindEnum": "inference.models.InferenceJob.Kind",
        "HeadKindEnum": "inference.models.HeadKind",
        "SourceEnum": "inference.models.ModelVersion.Source",
    },
}

# HTTPS. Behind a TLS-terminating proxy set HTTPS=1: redirects to https, HSTS for a year,
# Secure cookies; each has its own variable to override it. SECURE_PROXY_SSL_HEADER names the
# header the proxy sets, e.g. "HTTP_X_FORWARDED_PROTO,https" (only when the proxy always sets
# it: a client could otherwise claim https).
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading puts the host name into the browsers' built-in HTTPS-only list, which is
    # slow to undo: an operator's decision (SECURE_HSTS_PRELOAD=1), not a default.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
_proxy_header = env_list("SECURE_PROXY_SSL_HEADER", [])
if _proxy_header:
    if len(_proxy_header) != 2:
        raise ImproperlyConfigured('SECURE_PROXY_SSL_HEADER is "HEADER,value", e.g. '
                                   '"HTTP_X_FORWARDED_PROTO,https"')
    SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1])
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
# Sent with every response (annotations.middleware.ContentSecurityPolicyMiddleware). Pages load
# scripts from /static/ only; inline style attributes carry class colours; images come from
# the app, and data:/blob: URLs for the plots' PNG download and the slide viewer.
SPIDER_CONTENT_SECURITY_POLICY = env_str(
    "SPIDER_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'")

# Import limits: a 224x224 PNG is far below this; anything bigger is refused unread.
SPIDER_MAX_TILE_BYTES = env_int("SPIDER_MAX_TILE_BYTES", 4 * 1024 * 1024)
# Records per import batch, one transaction each. bench/import_parts.py: 2,000 imports 20k
# records ~10% faster than 500 (fewer round trips and commits per record); a folder batch
# holds only the hashes of its files, an archive's member bytes go 500 at a time.
SPIDER_IMPORT_BATCH = env_int("SPIDER_IMPORT_BATCH", 2000, minimum=1)
# Processes that read, hash and check the files of an imported folder (and threads that
# check an archive's members, which arrive in the importing process): one per core this
# process may use (its cpuset, not the host's), 1 to 8. Processes, because on threads each
# file took the GIL back five or six times (open, fstat, read, close, sha256) from the
# thread writing rows: on 2 cores 2 threads checked files no faster than one.
# bench/import_parts.py --workers compares counts. Raise it for a dataset on a network
# share, where each read waits on the network, not a core.
# (inference.modeling.pipeline.usable_cores counts the same way; it is torch-side, which
# settings must not import.)
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SPIDER_IMPORT_WORKERS = env_int("SPIDER_IMPORT_WORKERS", max(1, min(8, _CORES or 1)), minimum=1)
# Folders a project admin may import from in the browser (empty: command line only).
SPIDER_IMPORT_ROOTS = env_list("SPIDER_IMPORT_ROOTS", [])

# Whole slides: tissue is cut into 224 px tiles at this resolution (20x); a tile is kept when
# at least SLIDE_MIN_TISSUE of it is tissue on the thumbnail mask. Deep Zoom tiles for the
# viewer are cached for SLIDE_DZI_CACHE_SECONDS (they never change for one slide file).
SPIDER_SLIDE_MPP = float(env_str("SPIDER_SLIDE_MPP", "0.5"))
SPIDER_SLIDE_MIN_TISSUE = float(env_str("SPIDER_SLIDE_MIN_TISSUE", "0.5"))
SPIDER_SLIDE_DZI_CACHE_SECONDS = env_int("SPIDER_SLIDE_DZI_CACHE_SECONDS", 86400)

# Review: how long "next item" holds a patch for a reviewer, and keeps a skipped one from them.
SPIDER_LEASE_SECONDS = env_int("SPIDER_LEASE_SECONDS", 300)
SPIDER_SKIP_SECONDS = env_int("SPIDER_SKIP_SECONDS", 3600)

# Inference. The GPU worker reads tiles, runs the backbone and caches float16 embeddings.
SPIDER_DEFAULT_BACKBONE_WEIGHTS = env_str("SPIDER_DEFAULT_BACKBONE_WEIGHTS", "")
# Without real weights a random Hibou-L is useless, so the honest default is the weightless
# colour/texture encoder; set both for real work (hibou-l + a local histai/hibou-L snapshot).
SPIDER_DEFAULT_BACKBONE = env_str(
    "SPIDER_DEFAULT_BACKBONE", "hibou-l" if SPIDER_DEFAULT_BACKBONE_WEIGHTS else "color-texture")
SPIDER_INFERENCE_DEVICE = env_str("SPIDER_INFERENCE_DEVICE", "")  # "" = cuda when present
SPIDER_EMBED_BATCH = env_int("SPIDER_EMBED_BATCH", 64)
_embed_workers = env_str("SPIDER_EMBED_WORKERS", "")
# PNG decoders per GPU worker; None = planned from its cores (pipeline.plan_decoding).
SPIDER_EMBED_WORKERS = int(_embed_workers) if _embed_workers else None
# Embedding chains one job fans out into once a step was not enough: at least the number of
# GPU worker processes (all hosts) that should share one job; 1 = one worker per job.
SPIDER_EMBED_PARALLEL = max(1, env_int("SPIDER_EMBED_PARALLEL", 4))
SPIDER_EMBED_CHUNK = env_int("SPIDER_EMBED_CHUNK", 2048)  # tiles claimed per transaction
SPIDER_PREDICT_CHUNK = env_int("SPIDER_PREDICT_CHUNK", 2048)  # patches per transaction
SPIDER_TASK_STEP_SECONDS = env_int("SPIDER_TASK_STEP_SECONDS", 60)  # then re-queue
# Job life cycle: a worker beats every HEARTBEAT seconds while it runs a job; a running job
# with no beat for STALE seconds is shown as stalled (its worker died) and may be resumed.
SPIDER_JOB_HEARTBEAT_SECONDS = env_int("SPIDER_JOB_HEARTBEAT_SECONDS", 10)
SPIDER_JOB_STALE_SECONDS = env_int("SPIDER_JOB_STALE_SECONDS", 60)
SPIDER_JOB_PROGRESS_SECONDS = env_int("SPIDER_JOB_PROGRESS_SECONDS", 1)  # progress writes
# Every worker sweeps for stalled jobs every SWEEP seconds (0: off; `manage.py sweep_jobs`
# does one pass): one taken up fewer than MAX_ATTEMPTS times is queued again, the others
# fail. A pending job nobody has taken for PENDING_WARN seconds says so on the page and API.
SPIDER_JOB_SWEEP_SECONDS = env_int("SPIDER_JOB_SWEEP_SECONDS", 30)
SPIDER_JOB_MAX_ATTEMPTS = env_int("SPIDER_JOB_MAX_ATTEMPTS", 2)
SPIDER_JOB_PENDING_WARN_SECONDS = env_int("SPIDER_JOB_PENDING_WARN_SECONDS", 60)
# Scratch space for workers (an export is written here, then stored): local to the worker.
SPIDER_SCRATCH_ROOT = env_str("SPIDER_SCRATCH_ROOT", str(BASE_DIR / ".scratch"))
# Label-quality score stored per prediction: "self_confidence" or "normalized_margin".
SPIDER_LABEL_QUALITY = env_str("SPIDER_LABEL_QUALITY", "self_confidence")
if SPIDER_LABEL_QUALITY not in ("self_confidence", "normalized_margin"):
    raise ImproperlyConfigured("SPIDER_LABEL_QUALITY must be self_confidence or normalized_margin")

# One handler, on the root logger: every line is written once. Django's defaults give the
# "django" and "django.server" loggers handlers of their own (the former printing only with
# DEBUG on, so each django.* line appeared twice there); configuring "django" here removes
# them, and its children propagate to the root. A Celery worker replaces the root handler
# with its own (worker_hijack_root_logger), which then prints each line once as well.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # An expected 403 is one warning line, not a traceback (spider_web/logging.py).
        "expected_refusal": {"()": "spider_web.logging.ExpectedForbiddenFilter"},
    },
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["expected_refusal"]},
    },
}
