"""Configuration: production refuses to start without its secrets, and says which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "INTERLAYER_"))}
    base.pop("SECRET_KEY", None)
    base.pop("DATABASE_URL", None)
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


def test_production_with_every_secret_starts():
    result = run_check(
        {
            "INTERLAYER_ENV": "production",
            "SECRET_KEY": "x" * 50,
            "SHOPIFY_API_KEY": "key",
            "SHOPIFY_API_SECRET": "s" * 40,
            "SHOPIFY_APP_URL": "https://interlayer.example.com",
            "INTERLAYER_ENCRYPTION_KEYS": "Jq0m3ZmXb3CkQ0sZQ6nmV5zvtdzN9vWbq3r0k2sV2ZQ=",
            "DATABASE_URL": "sqlite:////tmp/interlayer-settings-check.sqlite3",
            "ALLOWED_HOSTS": "interlayer.example.com",
        }
    )

    assert result.returncode == 0, result.stderr
