"""Interlayer settings: everything comes from the environment.

Safe by default: without INTERLAYER_ENV=development the production profile runs (DEBUG
off, HTTPS only, every secret given explicitly and checked), and start-up stops with one
clear message naming everything missing or weak. Development (the demo, the tests, a
developer's shell) says so explicitly and then needs nothing else: SQLite, the ORM queue
broker, throwaway secrets.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from recommender.ranking.index import EXACT_LIMIT

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")
    return value in {"true", "1", "yes"}


def _envnumber(name: str, default: str, kind: type[int] | type[float]) -> int | float:
    value = os.getenv(name, default)
    try:
        return kind(value)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {noun}, not {value!r}") from None


def envint(name: str, default: str) -> int:
    return int(_envnumber(name, default, int))


def envfloat(name: str, default: str) -> float:
    return float(_envnumber(name, default, float))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


ENVIRONMENT = os.getenv("INTERLAYER_ENV", "production")
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured("INTERLAYER_ENV must be 'development' or 'production'")
PRODUCTION = ENVIRONMENT == "production"

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - development only
_DEV_API_SECRET = "interlayer-dev-api-secret-not-for-production"  # noqa: S105 - likewise
MIN_SECRET_KEY_LENGTH = 50


def _production_problems() -> list[str]:
    """Everything production is missing or was given weakly, in one list."""
    problems = [
        f"{name} (missing)"
        for name in ("SHOPIFY_API_KEY", "SHOPIFY_APP_URL", "DATABASE_URL", "ALLOWED_HOSTS")
        if not os.getenv(name, "").strip()
    ]
    secret_key = os.getenv("SECRET_KEY", "")
    if len(secret_key) < MIN_SECRET_KEY_LENGTH or secret_key == _DEV_SECRET_KEY:
        problems.append(f"SECRET_KEY (missing, or shorter than {MIN_SECRET_KEY_LENGTH} characters)")
    api_secret = os.getenv("SHOPIFY_API_SECRET", "")
    if len(api_secret) < 16 or api_secret == _DEV_API_SECRET:
        problems.append("SHOPIFY_API_SECRET (missing, or not the app's real secret)")
    keys = envlist("INTERLAYER_ENCRYPTION_KEYS")
    if not keys:
        problems.append("INTERLAYER_ENCRYPTION_KEYS (missing)")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"INTERLAYER_ENCRYPTION_KEYS (key {number} is not a Fernet key)")
    if os.getenv("SHOPIFY_APP_URL", "").startswith("http://"):
        problems.append("SHOPIFY_APP_URL (must be https)")
    # The simulator would be sent the API secret and every store's token, and would serve
    # the scripts of the merchants' admin page: development and tests only.
    if os.getenv("SHOPIFY_SIMULATOR_URL", "").strip():
        problems.append("SHOPIFY_SIMULATOR_URL (development and tests only)")
    for name in ("SHOPIFY_APP_BRIDGE_URL", "SHOPIFY_POLARIS_URL"):
        if not (os.getenv(name, "").strip() or "https://").startswith("https://"):
            problems.append(f"{name} (must be https)")
    if any(not origin.startswith("https://") for origin in envlist("SHOPIFY_ADMIN_ORIGINS")):
        problems.append("SHOPIFY_ADMIN_ORIGINS (each must be https)")
    if os.getenv("DEBUG", "false").strip().lower() in {"true", "1", "yes"}:
        problems.append("DEBUG (must be off: its error pages show secrets)")
    # Merchants write here from the support page and the privacy policy the listing links.
    if "@" not in os.getenv("INTERLAYER_SUPPORT_EMAIL", ""):
        problems.append("INTERLAYER_SUPPORT_EMAIL (missing: merchants' support address)")
    # No default in production: a front of ours left uncounted makes every shopper the app
    # proxy's address, and the per-address limits then cap the whole network.
    if not os.getenv("INTERLAYER_TRUSTED_PROXY_HOPS", "").strip().isdigit():
        problems.append(
            "INTERLAYER_TRUSTED_PROXY_HOPS (missing: 1 for Shopify's app proxy alone, plus one "
            "for each proxy of ours in front of the app, e.g. 2 behind deploy/nginx-interlayer.conf)"
        )
    return problems


if PRODUCTION:
    _problems = _production_problems()
    if _problems:
        raise ImproperlyConfigured(
            "Interlayer cannot start in production without: "
            + "; ".join(_problems)
            + ". (Set INTERLAYER_ENV=development for a local run.)"
        )

SECRET_KEY = os.getenv("SECRET_KEY", _DEV_SECRET_KEY)
DEBUG = envbool("DEBUG", "false" if PRODUCTION else "true")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "" if PRODUCTION else "*")

# HTTPS. Production sits behind a proxy that terminates TLS and says so in
# X-Forwarded-Proto (set SECURE_PROXY_SSL_HEADER="" if it does not).
_ssl_header = os.getenv("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO" if PRODUCTION else "")
SECURE_PROXY_SSL_HEADER = (_ssl_header, "https") if _ssl_header else None
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true" if PRODUCTION else "false")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000" if PRODUCTION else "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "true")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "false")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
# No cookie sessions exist to protect: embedded API calls carry a verified ID token each,
# webhooks and app-proxy requests an HMAC signature, so Django's CSRF middleware (a cookie
# defence) is not installed. The embedded admin frames our pages, and the per-shop CSP
# frame-ancestors (stores.auth.page_csp) is the framing control, not
# X-Frame-Options (which cannot name a shop). HSTS preload is the domain owner's decision.
# Error reports (the debug page of development) hide passwords written into URLs too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "interlayer.logs.ReportFilter"
SILENCED_SYSTEM_CHECKS = ["security.W002", "security.W003", "security.W021"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "django_q",
    "stores",
    "recommender",
]

MIDDLEWARE = [
    "interlayer.health.HealthMiddleware",  # first: probes name the machine by its address
    "interlayer.logs.RequestShopMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# interlayer.diagnostics_urls adds the routes tests and benchmarks use; never in production.
ROOT_URLCONF = os.getenv("INTERLAYER_URLCONF", "interlayer.urls")
if PRODUCTION and ROOT_URLCONF != "interlayer.urls":
    raise ImproperlyConfigured("INTERLAYER_URLCONF is for tests and benchmarks, not production")
WSGI_APPLICATION = "interlayer.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "interlayer.context_processors.shopify",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'interlayer.sqlite3'}"),
        # Persistent connections: a new PostgreSQL connection per request costs more than
        # the storefront endpoints' own work.
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database host that drops packets fails a connection in seconds, not psycopg's two
    # minutes: a web process's start (storefront.warm_up) stays within gunicorn's timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", envint("DATABASE_CONNECT_TIMEOUT", "10")
    )
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, worker, demo) share one SQLite file: wait for locks rather
    # than fail, and let readers proceed while a writer works.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app directories in development; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2 * 1024 * 1024))

# --- Shopify ---------------------------------------------------------------------------
SHOPIFY_API_KEY = os.getenv("SHOPIFY_API_KEY", "interlayer-dev-api-key")
SHOPIFY_API_SECRET = os.getenv("SHOPIFY_API_SECRET", _DEV_API_SECRET)
# The previous secret during a rotation; requests signed with either are accepted.
SHOPIFY_API_SECRET_OLD = os.getenv("SHOPIFY_API_SECRET_OLD") or None
# The one pinned Admin API version. shopify.app.toml pins the same version for webhooks.
SHOPIFY_API_VERSION = "2026-10"
SHOPIFY_SCOPES = envlist(
    "SHOPIFY_SCOPES", "read_products,read_themes,write_pixels,read_customer_events,read_orders"
)
SHOPIFY_APP_URL = os.getenv("SHOPIFY_APP_URL", "http://127.0.0.1:8000").rstrip("/")
SHOPIFY_APP_HANDLE = os.getenv("SHOPIFY_APP_HANDLE", "interlayer")
# When set, every request for https://{shop} goes to this local simulator instead; the
# code path (shopifyapp / ShopifyAPI over httpx) is unchanged.
SHOPIFY_SIMULATOR_URL = os.getenv("SHOPIFY_SIMULATOR_URL", "").rstrip("/")
# Where the embedded pages load App Bridge from, and which origins may frame them.
# (Set but empty, as an env file copied from .env.example leaves them: the default.)
SHOPIFY_APP_BRIDGE_URL = os.getenv("SHOPIFY_APP_BRIDGE_URL", "").strip() or (
    f"{SHOPIFY_SIMULATOR_URL}/cdn/app-bridge.js"
    if SHOPIFY_SIMULATOR_URL
    else "https://cdn.shopify.com/shopifycloud/app-bridge.js"
)
# Polaris web components (<s-page>, <s-section>, <s-button>…) for the embedded pages: from
# Shopify's CDN in production, from the simulator's stand-in when developing offline.
SHOPIFY_POLARIS_URL = os.getenv("SHOPIFY_POLARIS_URL", "").strip() or (
    f"{SHOPIFY_SIMULATOR_URL}/cdn/polaris.js"
    if SHOPIFY_SIMULATOR_URL
    else "https://cdn.shopify.com/shopifycloud/polaris.js"
)
# How long the live theme's state (app embed on, app block on the product template) read
# through GraphQL is reused: one read serves the whole settings page load.
SHOPIFY_THEME_STATE_TTL_SECONDS = envint("SHOPIFY_THEME_STATE_TTL_SECONDS", "30")
SHOPIFY_ADMIN_ORIGINS = envlist("SHOPIFY_ADMIN_ORIGINS") or [
    "https://admin.shopify.com",
    *([SHOPIFY_SIMULATOR_URL] if SHOPIFY_SIMULATOR_URL else []),
]
SHOPIFY_HTTP_TIMEOUT = envfloat("SHOPIFY_HTTP_TIMEOUT", "10")
# How far a signed install link's timestamp may be from now (seconds).
SHOPIFY_HMAC_TIMESTAMP_TOLERANCE = envint("SHOPIFY_HMAC_TIMESTAMP_TOLERANCE", "90")
# How long an OAuth state nonce stays usable (seconds).
SHOPIFY_OAUTH_STATE_TTL = envint("SHOPIFY_OAUTH_STATE_TTL", "600")
# Refresh access tokens this long before they expire (seconds).
SHOPIFY_TOKEN_REFRESH_MARGIN = envint("SHOPIFY_TOKEN_REFRESH_MARGIN", "300")

# Where merchants write to (the support page, the privacy policy and the App Store listing).
INTERLAYER_SUPPORT_EMAIL = os.getenv("INTERLAYER_SUPPORT_EMAIL", "support@interlayer.example.com")

# Operators who send "Authorization: Bearer <this>" to /health get its details.
INTERLAYER_HEALTH_TOKEN = os.getenv("INTERLAYER_HEALTH_TOKEN", "")

# How many proxies of ours append to X-Forwarded-For in front of the app: Shopify's app
# proxy is one; add one per load balancer of ours. The shopper's address is the entry this
# many places from the right (stores.auth.client_ip); anything left of it is the client's say.
INTERLAYER_TRUSTED_PROXY_HOPS = envint("INTERLAYER_TRUSTED_PROXY_HOPS", "1")

# Fernet keys for tokens at rest, newest first (rotation: prepend a new key, re-encrypt).
INTERLAYER_ENCRYPTION_KEYS = envlist("INTERLAYER_ENCRYPTION_KEYS")

# --- Recommender ---------------------------------------------------------------------
# "onnx" (int8 ONNX Runtime, the fast path), "sentence-transformers" (the fp32 reference)
# or "hash" (a deterministic stand-in for unit tests).
RECOMMENDER_EMBEDDER = os.getenv("RECOMMENDER_EMBEDDER", "onnx")
RECOMMENDER_MODEL_DIR = Path(os.getenv("RECOMMENDER_MODEL_DIR", str(BASE_DIR / "var" / "models")))
RECOMMENDER_EMBED_THREADS = envint("RECOMMENDER_EMBED_THREADS", "2")
RECOMMENDER_EMBED_QUIET_SECONDS = envfloat("RECOMMENDER_EMBED_QUIET_SECONDS", "2")
# Catalogs larger than this are read with one bulk operation instead of page by page.
RECOMMENDER_BULK_THRESHOLD = envint("RECOMMENDER_BULK_THRESHOLD", "2000")
RECOMMENDER_PAGE_SIZE = envint("RECOMMENDER_PAGE_SIZE", "100")
# Where the published index versions live (shared by every web process on a machine).
RECOMMENDER_INDEX_DIR = Path(os.getenv("RECOMMENDER_INDEX_DIR", str(BASE_DIR / "var" / "index")))
RECOMMENDER_INDEX_POLL_SECONDS = envfloat("RECOMMENDER_INDEX_POLL_SECONDS", "2")
# A published index version a process could not read is tried again after this long.
RECOMMENDER_INDEX_RETRY_SECONDS = envfloat("RECOMMENDER_INDEX_RETRY_SECONDS", "300")
RECOMMENDER_EXACT_INDEX_LIMIT = envint("RECOMMENDER_EXACT_INDEX_LIMIT", str(EXACT_LIMIT))
# How long a process reuses the network's state (blocks, credits, enabled widgets):
# merchants' changes reach the storefront within this many seconds.
RECOMMENDER_STATE_TTL_SECONDS = envfloat("RECOMMENDER_STATE_TTL_SECONDS", "10")
# Cosine similarity below which a partner product is not shown at all, whatever else
# relates it. A book and the items beside it need at least relevance.TOPIC_MIN_COSINE
# (0.2), and the host's own products recommendations.OWN_MIN_COSINE (0.2), however low
# this is set.
# Where the calibrated relevance below is measured on a network like the demo one, only an
# item in a category related to the page's comes near this floor (content alone asks for
# about 0.25 there); on a network whose unrelated pairs are less alike, it decides more.
RECOMMENDER_RELEVANCE_FLOOR = envfloat("RECOMMENDER_RELEVANCE_FLOOR", "0.15")
# Calibrated relevance (recommender/ranking/relevance.py) a partner product needs: 0.95 is
# "more alike than 95 % of unrelated pairs", or less alike in a related category.
RECOMMENDER_MIN_RELEVANCE = envfloat("RECOMMENDER_MIN_RELEVANCE", "0.95")
# Rank partner items by what shoppers click too (recommender/ranking/learning.py).
RECOMMENDER_LEARNING = envbool("RECOMMENDER_LEARNING", "true")
# The share of widgets whose last partner slot explores (Thompson sampling).
RECOMMENDER_EXPLORE_SHARE = envfloat("RECOMMENDER_EXPLORE_SHARE", "0.2")
# Clicks are written before their redirect; whether they bill is settled behind it by a
# thread of each web process, in batches (true), or by each request once its response
# is sent (false: what tests inside one database transaction need).
RECOMMENDER_SETTLE_CLICKS_BEHIND = envbool("RECOMMENDER_SETTLE_CLICKS_BEHIND", "true")
# On PostgreSQL, with clicks settled behind: each click is appended to a journal file of
# its web process before the redirect and inserted by the settling thread in batches
# (recommender/exchange/click_journal.py). The directory must be on the web machine's own
# disk. _SYNC makes each click wait for the disk too (survives a power loss of the web
# machine, at about a third of the click redirect's throughput).
RECOMMENDER_CLICK_JOURNAL = envbool("RECOMMENDER_CLICK_JOURNAL", "true")
RECOMMENDER_CLICK_JOURNAL_DIR = Path(
    os.getenv("RECOMMENDER_CLICK_JOURNAL_DIR", str(BASE_DIR / "var" / "click-journal"))
)
RECOMMENDER_CLICK_JOURNAL_SYNC = envbool("RECOMMENDER_CLICK_JOURNAL_SYNC", "false")
# Judge clicks by what the browser says of them (Fetch Metadata): a prefetch refused, a
# script's request or a frame's sent on unrecorded. Off: judged by the other rules alone.
RECOMMENDER_CLICK_FETCH_METADATA = envbool("RECOMMENDER_CLICK_FETCH_METADATA", "true")

# --- Background work -------------------------------------------------------------------
REDIS_URL = os.getenv("REDIS_URL", "")
Q_CLUSTER = {
    "name": "interlayer",
    "workers": envint("Q_WORKERS", "1"),
    "timeout": envint("Q_TIMEOUT", "1800"),
    "retry": envint("Q_RETRY", "1900"),
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = envfloat("Q_POLL", "0.5")
# Run tasks inline (tests of task bodies); the worker is the normal path.
Q_CLUSTER["sync"] = envbool("Q_SYNC", "false")

LOG_FORMAT = os.getenv("LOG_FORMAT", "plain")  # "plain" or "json" (one object per line)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"shop": {"()": "interlayer.logs.ShopFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s shop=%(shop)s %(message)s"},
        "json": {"()": "interlayer.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["shop"],
        }
    },
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every request URL at INFO; keep it quiet.
        "httpx": {"level": "WARNING"},
        "django_q": {"level": "WARNING"},
        # faiss logs its CPU-feature probing (missing AVX variants) at INFO.
        "faiss.loader": {"level": "WARNING"},
    },
}
