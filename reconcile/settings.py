"""TrueUp settings: everything comes from the environment (see README, "Configuration").

With nothing set, TrueUp runs on SQLite under var/ with a generated secret key and encryption
key, which is what `make run` relies on.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from reconcile import localkeys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRUEUP_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY") or localkeys.secret_key(VAR_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Fernet keys for credentials at rest, newest first; older keys still decrypt (rotation).
TRUEUP_ENCRYPTION_KEYS = env_list("TRUEUP_ENCRYPTION_KEYS") or [localkeys.encryption_keys(VAR_DIR)]
# Anyone may create an organization; switch off when hosting TrueUp for one team only.
TRUEUP_OPEN_SIGNUP = env_bool("TRUEUP_OPEN_SIGNUP", True)

# KnowBe4 Partner GraphQL endpoints per region (seed 000); `make run` points them at the sandbox.
KNOWBE4_GRAPHQL_URLS = {
    "us": os.environ.get("KNOWBE4_GRAPHQL_URL_US", "https://training.knowbe4.com/graphql"),
    "eu": os.environ.get("KNOWBE4_GRAPHQL_URL_EU", "https://eu.knowbe4.com/graphql"),
    "ca": os.environ.get("KNOWBE4_GRAPHQL_URL_CA", "https://ca.knowbe4.com/graphql"),
    "uk": os.environ.get("KNOWBE4_GRAPHQL_URL_UK", "https://uk.knowbe4.com/graphql"),
    "de": os.environ.get("KNOWBE4_GRAPHQL_URL_DE", "https://de.knowbe4.com/graphql"),
}
# Accounts per page when importing from KnowBe4's Partner API (25..1000).
KNOWBE4_PAGE_SIZE = int(os.environ.get("KNOWBE4_PAGE_SIZE", "100"))
# KnowBe4 Reporting REST API base URLs per site (paths start with /v1); `make run` points them
# at the sandbox.
KNOWBE4_REPORTING_URLS = {
    "us": os.environ.get("KNOWBE4_REPORTING_URL_US", "https://us.api.knowbe4.com"),
    "eu": os.environ.get("KNOWBE4_REPORTING_URL_EU", "https://eu.api.knowbe4.com"),
    "ca": os.environ.get("KNOWBE4_REPORTING_URL_CA", "https://ca.api.knowbe4.com"),
    "uk": os.environ.get("KNOWBE4_REPORTING_URL_UK", "https://uk.api.knowbe4.com"),
    "de": os.environ.get("KNOWBE4_REPORTING_URL_DE", "https://de.api.knowbe4.com"),
}
# Seconds one outside HTTP request may take, and how many times a 429/5xx is retried.
TRUEUP_HTTP_TIMEOUT = float(os.environ.get("TRUEUP_HTTP_TIMEOUT", "30"))
TRUEUP_HTTP_RETRIES = int(os.environ.get("TRUEUP_HTTP_RETRIES", "4"))
TRUEUP_HTTP_MAX_RETRY_WAIT = float(os.environ.get("TRUEUP_HTTP_MAX_RETRY_WAIT", "60"))
# A running sync whose worker has not reported for this many seconds is marked unknown.
TRUEUP_SYNC_STALE_AFTER = int(os.environ.get("TRUEUP_SYNC_STALE_AFTER", "900"))
TRUEUP_QUARANTINE_AFTER = int(os.environ.get("TRUEUP_QUARANTINE_AFTER", "5"))
TRUEUP_PUSH_STALE_AFTER = int(os.environ.get("TRUEUP_PUSH_STALE_AFTER", "600"))
# CSV usage uploads: the largest file (bytes) and the most data rows accepted at once.
TRUEUP_CSV_MAX_BYTES = int(os.environ.get("TRUEUP_CSV_MAX_BYTES", str(20 * 1024 * 1024)))
TRUEUP_CSV_MAX_ROWS = int(os.environ.get("TRUEUP_CSV_MAX_ROWS", "50000"))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_q",
    "reconcile.tenancy",
    "integrations",
    "psa",
    "reconcile.mapping",
    "reconcile.sync",
    "reconcile.review",
    "reconcile.notifications",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "reconcile.tenancy.middleware.CurrentOrganizationMiddleware",
    "reconcile.observability.RequestLogMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reconcile.urls"
WSGI_APPLICATION = "reconcile.wsgi.application"

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
                "reconcile.tenancy.context_processors.organization",
                "reconcile.sync.context_processors.quarantined",
                "reconcile.notifications.context_processors.unread_notifications",
            ],
        },
    },
]

# Each process keeps its own caches in memory: their keys say exactly what they hold (the
# dashboard's series, rendered review cards), so processes never need to agree.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Rendered review cards, about 3 kB each: a few thousand per process.
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "fragments",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
}

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'trueup.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel apart from the SQL, and psycopg prepares a query the fifth time a
    # connection runs it: PostgreSQL plans it once, not on every request (the review page's
    # card query took longer to plan than to run). Behind PgBouncer in transaction mode,
    # which cannot keep prepared statements, set DATABASE_SERVER_SIDE_BINDING=0.
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": env_bool("DATABASE_SERVER_SIDE_BINDING", True)
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # The web server and the worker write to the same file: WAL lets readers go on while one
    # writes, IMMEDIATE makes writers queue for the lock instead of failing with "locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so a worker process started by the browser tests can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Login throttling: after AXES_FAILURE_LIMIT wrong passwords for one user name from one
    # address, that pair is locked out for AXES_COOLOFF_TIME.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("TRUEUP_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("TRUEUP_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
# Two-factor (TOTP, django-otp): the issuer name authenticator apps show.
OTP_TOTP_ISSUER = "TrueUp"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
# The interface is English only: without the translation machinery every number and date a
# page shows formats faster (docs/PERFORMANCE.md).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# E-mail (invitations, notifications; sent by the worker): console in development, SMTP when
# EMAIL_HOST is set; EMAIL_BACKEND names another backend outright.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "20"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "TrueUp <trueup@localhost>")
# Where people reach TrueUp: the links in e-mailed notifications start with it.
TRUEUP_BASE_URL = os.environ.get("TRUEUP_BASE_URL", "http://127.0.0.1:8000")
# A notification e-mail that failed this many times is given up (it stays in the app).
TRUEUP_NOTIFICATION_MAX_ATTEMPTS = int(os.environ.get("TRUEUP_NOTIFICATION_MAX_ATTEMPTS", "10"))

# Worker: django-q2 on the ORM broker (the default database) unless REDIS_URL is set, in
# which case several clusters share that Redis (docs/ARCHITECTURE.md, "Scaling out").
Q_CLUSTER = {
    "name": "trueup",
    "workers": int(os.environ.get("TRUEUP_WORKERS", "2")),
    "timeout": int(os.environ.get("TRUEUP_TASK_TIMEOUT", "1800")),
    "retry": int(os.environ.get("TRUEUP_TASK_TIMEOUT", "1800")) + 60,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "label": "Worker",
}
if os.environ.get("REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = float(os.environ.get("TRUEUP_WORKER_POLL", "0.5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # One JSON object per line in production; readable lines while developing.
            "formatter": os.environ.get("TRUEUP_LOG_FORMAT", "plain" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # gql logs whole GraphQL payloads at INFO; payloads carry customer data.
        "gql": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Lockouts are logged at WARNING; the start-up banner and each attempt are noise.
        "axes": {"level": "WARNING"},
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(60 * 60 * 12)))
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG and env_bool("SECURE_COOKIES", True):
    # HTTPS only from the first answer on (a year; the browser remembers it).
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# Content Security Policy (django-csp): only TrueUp's own scripts and styles, no inline
# script, no framing. Chart.js and htmx set element styles from script, which CSP allows.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
