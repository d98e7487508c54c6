"""Configuration: production refuses to start without its secrets, and says which."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.views.debug import get_exception_reporter_filter

ROOT = Path(__file__).resolve().parent.parent


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "INTERLAYER_"))}
    base.pop("SECRET_KEY", None)
    base.pop("DATABASE_URL", None)
    base.pop("DJANGO_SETTINGS_MODULE", None)  # the app's own settings, not the tests' ones
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_secrets_stops_with_a_message_naming_them():
    result = run_check({"INTERLAYER_ENV": "production"})

    assert result.returncode != 0
    assert "Interlayer cannot start in production without:" in result.stderr
    for name in ("SECRET_KEY", "SHOPIFY_API_SECRET", "INTERLAYER_ENCRYPTION_KEYS", "DATABASE_URL"):
        assert name in result.stderr


PRODUCTION_ENV = {
    "INTERLAYER_ENV": "production",
    "SECRET_KEY": "x" * 50,
    "SHOPIFY_API_KEY": "key",
    "SHOPIFY_API_SECRET": "s" * 40,
    "SHOPIFY_APP_URL": "https://interlayer.example.com",
    "INTERLAYER_ENCRYPTION_KEYS": "Jq0m3ZmXb3CkQ0sZQ6nmV5zvtdzN9vWbq3r0k2sV2ZQ=",
    "DATABASE_URL": "sqlite:////tmp/interlayer-settings-check.sqlite3",
    "ALLOWED_HOSTS": "interlayer.example.com",
    "INTERLAYER_SUPPORT_EMAIL": "help@interlayer.example.com",
    "INTERLAYER_TRUSTED_PROXY_HOPS": "2",
}


def test_production_with_every_secret_starts():
    result = run_check(PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr


def test_an_unset_environment_runs_the_production_profile_and_refuses_to_start():
    result = run_check({})  # no INTERLAYER_ENV at all: safe by default

    assert result.returncode != 0
    assert "Interlayer cannot start in production without:" in result.stderr
    assert "INTERLAYER_ENV=development" in result.stderr  # and says how to run locally


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "SECRET_KEY"),
        (
            {"SHOPIFY_API_SECRET": "interlayer-dev-api-secret-not-for-production"},
            "SHOPIFY_API_SECRET",
        ),
        ({"INTERLAYER_ENCRYPTION_KEYS": "not-a-fernet-key"}, "INTERLAYER_ENCRYPTION_KEYS"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        ({"SHOPIFY_APP_URL": "http://interlayer.example.com"}, "SHOPIFY_APP_URL"),
        ({"DEBUG": "true"}, "DEBUG"),
        ({"INTERLAYER_SUPPORT_EMAIL": ""}, "INTERLAYER_SUPPORT_EMAIL"),
        ({"INTERLAYER_TRUSTED_PROXY_HOPS": ""}, "INTERLAYER_TRUSTED_PROXY_HOPS"),
        ({"INTERLAYER_TRUSTED_PROXY_HOPS": "two"}, "INTERLAYER_TRUSTED_PROXY_HOPS"),
        # The simulator gets the API secret and every store's token, and serves the admin
        # page's scripts: a development variable left in a production environment.
        ({"SHOPIFY_SIMULATOR_URL": "http://127.0.0.1:8001"}, "SHOPIFY_SIMULATOR_URL"),
        (
            {"SHOPIFY_APP_BRIDGE_URL": "http://cdn.example.com/app-bridge.js"},
            "SHOPIFY_APP_BRIDGE_URL",
        ),
        ({"SHOPIFY_POLARIS_URL": "http://cdn.example.com/polaris.js"}, "SHOPIFY_POLARIS_URL"),
        (
            {"SHOPIFY_ADMIN_ORIGINS": "https://admin.shopify.com,http://admin.example.com"},
            "SHOPIFY_ADMIN_ORIGINS",
        ),
    ],
)
def test_production_refuses_a_weak_or_malformed_secret_and_names_it(override, named):
    result = run_check({**PRODUCTION_ENV, **override})

    assert result.returncode != 0
    assert named in result.stderr.split("without:")[1]


def shopify_script_urls(env: dict[str, str]) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "INTERLAYER_"))}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SHOPIFY_APP_BRIDGE_URL); print(s.SHOPIFY_POLARIS_URL); "
        "print(*s.SHOPIFY_ADMIN_ORIGINS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "interlayer.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


SHOPIFYS_OWN = [
    "https://cdn.shopify.com/shopifycloud/app-bridge.js",
    "https://cdn.shopify.com/shopifycloud/polaris.js",
    "https://admin.shopify.com",
]


def test_production_loads_app_bridge_and_polaris_from_shopify():
    assert shopify_script_urls(PRODUCTION_ENV) == SHOPIFYS_OWN


def test_variables_left_empty_as_the_example_file_has_them_take_their_defaults():
    """An env file copied from .env.example sets them empty: the pages loaded no App Bridge
    (an empty script address), and no admin could frame them."""
    empty = {"SHOPIFY_APP_BRIDGE_URL": "", "SHOPIFY_POLARIS_URL": "", "SHOPIFY_ADMIN_ORIGINS": ""}

    assert shopify_script_urls({**PRODUCTION_ENV, **empty}) == SHOPIFYS_OWN


def test_development_with_the_simulator_loads_its_offline_stand_ins():
    env = {"INTERLAYER_ENV": "development", "SHOPIFY_SIMULATOR_URL": "http://127.0.0.1:8001"}

    assert shopify_script_urls(env) == [
        "http://127.0.0.1:8001/cdn/app-bridge.js",
        "http://127.0.0.1:8001/cdn/polaris.js",
        "https://admin.shopify.com",
        "http://127.0.0.1:8001",
    ]


def test_env_example_lists_every_variable_the_settings_read():
    # The README sends operators to .env.example for every variable and its default.
    read = set(
        re.findall(
            r'(?:env\w*|os\.getenv|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"',
            (ROOT / "interlayer" / "settings.py").read_text(),
        )
    )
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert len(read) > 40  # the pattern still finds how settings.py reads the environment
    assert read - listed == set()


def test_error_reports_hide_a_password_written_into_a_url(rf, settings):
    """Django's debug page (development) lists the settings, hiding those named like a
    secret; a broker's password inside REDIS_URL, and the Q_CLUSTER that repeats it, were
    shown as they are."""
    settings.REDIS_URL = "redis://:s3cret-broker@redis.internal:6379/0"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": settings.REDIS_URL}
    settings.SHOPIFY_SIMULATOR_URL = "http://127.0.0.1:8001"

    shown = get_exception_reporter_filter(rf.get("/")).get_safe_settings()

    assert "s3cret-broker" not in repr(shown)
    assert (
        shown["REDIS_URL"].startswith("redis://:")
        and "@redis.internal:6379/0" in shown["REDIS_URL"]
    )
    assert shown["SHOPIFY_SIMULATOR_URL"] == "http://127.0.0.1:8001"  # no password: as it is
