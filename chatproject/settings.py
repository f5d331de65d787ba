"""Settings, all read from the environment (see README and docs/protocol.md)."""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEFAULT_SECRET_KEY = "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_number(name: str, default, *, kind=int, minimum: float = 0):
    """A number (`kind`: int or float) from the environment; a value that is not one, or
    is below `minimum`, stops the start with a message that names the variable."""
    value = os.environ.get(name, str(default)).strip()
    try:
        number = kind(value)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ImproperlyConfigured(f'{name} is a {noun}, not "{value}"') from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} is at least {minimum}")
    return number


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEFAULT_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "chatproject.errors.csrf_failure"

# Served under any name but this machine's own is production: no debug pages (they show
# settings and tracebacks), and no key everyone knows (it signs the session cookies).
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
if set(ALLOWED_HOSTS) - LOCAL_HOSTS:
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG is on while DJANGO_ALLOWED_HOSTS serves other hosts: turn it off")
    if SECRET_KEY == DEFAULT_SECRET_KEY:
        raise ImproperlyConfigured("set DJANGO_SECRET_KEY: the default key is public and must not sign real sessions")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    "csp",
    "accounts",
    "conversations",
    "agent",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatproject.urls"

# No inline script or style anywhere, and nothing loaded from elsewhere: a message's
# Markdown cannot pull in a remote image (which would leak what the page shows).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

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

ASGI_APPLICATION = "chatproject.asgi.application"

# DATABASE_URL=postgres://… selects PostgreSQL; unset, a SQLite file in WAL mode.
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "db.sqlite3"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Connections stay open (checked before reuse): channels closes "old" connections
    # before every consumer event, and with no age each event frame meant a reconnect.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Tests need a file, not :memory:, so the checkpointer can share it.
            "TEST": {"NAME": str(SQLITE_PATH.with_name(SQLITE_PATH.stem + "-test.sqlite3"))},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # Pub/sub: a group_send is one PUBLISH, and each process fans it out to its own
    # sockets (the list-based core layer costs four round trips per send and a polling
    # receive per process). Events are not queued for absent sockets; a socket that
    # (re)connects gets a snapshot, so none is needed.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a log-in that is locked out before a password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the source folders: no collectstatic step before the first start.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
if os.environ.get("EMAIL_FILE_PATH"):
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]

# The agent.
# The model every conversation starts with: `offline` or `<provider>:<model>` as
# LangChain's init_chat_model reads it; CHAT_MODELS, the others users may pick.
CHAT_MODEL = os.environ.get("CHAT_MODEL", "offline").strip()
CHAT_MODELS = list(dict.fromkeys([CHAT_MODEL, *env_list("CHAT_MODELS", "")]))
OFFLINE_MODEL_DELAY_MS = env_number("OFFLINE_MODEL_DELAY_MS", "20")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
# A model call: seconds to the first chunk of the reply, to connect, and between chunks.
# CHAT_TIMEOUT_SECONDS bounds all three; the other two narrow it.
CHAT_TIMEOUT_SECONDS = env_number("CHAT_TIMEOUT_SECONDS", "120", kind=float, minimum=0.1)
CHAT_CONNECT_TIMEOUT_SECONDS = env_number(
    "CHAT_CONNECT_TIMEOUT_SECONDS", min(10.0, CHAT_TIMEOUT_SECONDS), kind=float, minimum=0.1
)
CHAT_STALL_TIMEOUT_SECONDS = env_number("CHAT_STALL_TIMEOUT_SECONDS", CHAT_TIMEOUT_SECONDS, kind=float, minimum=0.1)
# Retries of a failed model call while nothing of its reply was shown; a Retry-After
# longer than CHAT_RETRY_MAX_WAIT_SECONDS is not waited for.
CHAT_MAX_RETRIES = env_number("CHAT_MAX_RETRIES", "2")
CHAT_RETRY_MAX_WAIT_SECONDS = env_number("CHAT_RETRY_MAX_WAIT_SECONDS", "60", kind=float)
# The history's token budget (unset: the model's input limit as LangChain knows it), the
# reply's limit (unset: the provider's own), and the model steps one run may take.
CHAT_CONTEXT_TOKENS = env_number("CHAT_CONTEXT_TOKENS", "0") or None
CHAT_MAX_OUTPUT_TOKENS = env_number("CHAT_MAX_OUTPUT_TOKENS", "0") or None
# The history's budget leaves this much room for the reply when CHAT_MAX_OUTPUT_TOKENS is unset.
CHAT_REPLY_ROOM_TOKENS = CHAT_MAX_OUTPUT_TOKENS or 4096
CHAT_MAX_STEPS = env_number("CHAT_MAX_STEPS", "10", minimum=1)
# How long Stop waits for a tool that is running to finish before its outcome is unknown.
TOOL_STOP_GRACE_SECONDS = env_number("TOOL_STOP_GRACE_SECONDS", "10", kind=float)
# Connections the checkpointer's pool may open per server process (PostgreSQL).
CHECKPOINT_POOL_SIZE = int(os.environ.get("CHECKPOINT_POOL_SIZE", "10"))
# Threads that run the ORM calls of the chat and its runs (PostgreSQL), each with its
# own connection: how many queries of one process may wait on the database at once.
ORM_THREADS = int(os.environ.get("ORM_THREADS", "8"))

# Durable runs: a process holds a run for RUN_LEASE_SECONDS and renews the lease while it
# lives; every RUN_RECOVERY_INTERVAL_SECONDS it claims runs whose lease has expired.
RUN_LEASE_SECONDS = float(os.environ.get("RUN_LEASE_SECONDS", "5"))
RUN_RECOVERY_INTERVAL_SECONDS = float(os.environ.get("RUN_RECOVERY_INTERVAL_SECONDS", "1.5"))
RUN_MAX_ATTEMPTS = int(os.environ.get("RUN_MAX_ATTEMPTS", "3"))
# Graph checkpoints kept per conversation after each run (plus those still needed: each
# branch's head, an active run's); the transcript is in Django's tables. 0 keeps all.
CHECKPOINTS_KEPT = int(os.environ.get("CHECKPOINTS_KEPT", "20"))

# A message sent while a run is active: "queue" it after the run, "reject" it (conflict),
# or "interrupt" the run and start the new one.
DOUBLE_TEXTING = os.environ.get("DOUBLE_TEXTING", "queue")
# Messages of one conversation waiting for their turn; one more is refused (`conflict`).
RUN_QUEUE_MAX = int(os.environ.get("RUN_QUEUE_MAX", "10"))
if DOUBLE_TEXTING not in {"queue", "reject", "interrupt"}:
    raise ImproperlyConfigured("DOUBLE_TEXTING is one of queue, reject, interrupt")

# Tools: which ones wait for the user's approval, and where http_post may go.
TOOLS_REQUIRING_APPROVAL = set(env_list("TOOLS_REQUIRING_APPROVAL", "send_email,http_post"))
WEBHOOK_ALLOWED_HOSTS = set(env_list("WEBHOOK_ALLOWED_HOSTS", ""))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "agent@localhost")

# The admin shows staff no message contents, tool arguments or graph state.
ADMIN_HIDE_MESSAGE_CONTENT = env_bool("ADMIN_HIDE_MESSAGE_CONTENT")

# Protocol limits (docs/protocol.md).
WS_MAX_FRAME_BYTES = 64 * 1024
MESSAGE_MAX_CHARS = 32_000
CLIENT_ID_MAX_CHARS = 64


def env_rate(name: str, default: str) -> tuple[int, float] | None:
    """A rate "<count>/<seconds>", e.g. "30/60"; "0" or empty turns the limit off (None)."""
    value = os.environ.get(name, default).strip()
    if value in {"", "0"}:
        return None
    count, _, seconds = value.partition("/")
    try:
        rate = int(count), float(seconds)
    except ValueError:
        raise ImproperlyConfigured(f'{name} is "<count>/<seconds>", e.g. "30/60", or 0 for no limit') from None
    if rate[0] < 1 or rate[1] <= 0:
        raise ImproperlyConfigured(f"{name} needs a count of at least 1 and a positive number of seconds")
    return rate


# Per-user limits (conversations/limits.py), across all of a user's sockets and, with
# Redis, all server processes: messages (send, edit, regenerate) and approval decisions
# per sliding window, and open websockets (0: no cap). A socket's slot lapses
# WS_SOCKET_TTL_SECONDS after its process dies.
RATE_LIMIT_MESSAGES = env_rate("RATE_LIMIT_MESSAGES", "60/60")
RATE_LIMIT_DECISIONS = env_rate("RATE_LIMIT_DECISIONS", "60/60")
WS_MAX_SOCKETS_PER_USER = int(os.environ.get("WS_MAX_SOCKETS_PER_USER", "20"))
WS_SOCKET_TTL_SECONDS = float(os.environ.get("WS_SOCKET_TTL_SECONDS", "30"))

# Under daphne, an HTTP connection that sends nothing for this long is closed: a request
# sent in part and then not finished, or an idle keep-alive connection (connections.py).
HTTP_IDLE_TIMEOUT_SECONDS = env_number("HTTP_IDLE_TIMEOUT_SECONDS", 15, minimum=1)

# Log-in throttling (django-axes, in the database so every server process counts): after
# LOGIN_FAILURE_LIMIT failed log-ins for one username, or from one address, log-ins for
# it are refused until fewer than that many are younger than LOGIN_COOLOFF_MINUTES (a
# refused try is one more); 0 failures: no throttling. The address is the ASGI server's
# client address (REMOTE_ADDR): behind a proxy, the server takes it from X-Forwarded-For
# (README, "Behind a proxy").
LOGIN_FAILURE_LIMIT = env_number("LOGIN_FAILURE_LIMIT", 5, minimum=0)
LOGIN_COOLOFF_MINUTES = env_number("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_ENABLED = LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success clears its username's failures from its address (accounts/signals.py).
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
# Form data of failed log-ins is kept for the admin: never the password or the CSRF token.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "refusals_without_traceback": {"()": "chatproject.logs.RefusalsWithoutTraceback"},
        "redact_secrets": {"()": "chatproject.logs.RedactSecrets"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["refusals_without_traceback", "redact_secrets"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: failures and lock-outs (WARNING), not every log-in (INFO).
    # httpx2 is the openai SDK's copy of httpx: both log each request at INFO.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "daphne", "axes")},
}

# WhiteNoise serves from the source folders (above); a missing collectstatic folder is expected.
warnings.filterwarnings("ignore", message="No directory at")
