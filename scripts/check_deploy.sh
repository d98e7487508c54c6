#!/usr/bin/env bash
# Django's deployment checks against the production profile, with stand-in secrets of the
# right shape (none of them real): any warning fails.
set -euo pipefail
cd "$(dirname "$0")/.."
env -u DEBUG -u SECURE_SSL_REDIRECT -u SECURE_HSTS_SECONDS -u SHOPIFY_SIMULATOR_URL \
  -u SHOPIFY_APP_BRIDGE_URL -u SHOPIFY_POLARIS_URL -u SHOPIFY_ADMIN_ORIGINS \
  INTERLAYER_ENV=production \
  SECRET_KEY="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
  SHOPIFY_API_KEY=ci-check-key \
  SHOPIFY_API_SECRET="$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')" \
  SHOPIFY_APP_URL=https://interlayer.example.com \
  ALLOWED_HOSTS=interlayer.example.com \
  INTERLAYER_SUPPORT_EMAIL=help@interlayer.example.com \
  INTERLAYER_TRUSTED_PROXY_HOPS=2 \
  INTERLAYER_ENCRYPTION_KEYS="$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
  DATABASE_URL=sqlite:////tmp/interlayer-deploy-check.sqlite3 \
  .venv/bin/python manage.py check --deploy --fail-level WARNING
