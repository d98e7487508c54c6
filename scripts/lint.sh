#!/usr/bin/env bash
# Every static check, as .ci/run and the pre-commit hooks run them.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
node_modules/.bin/eslint extensions/*/assets/*.js extensions/*/src/*.js static/*.js scripts/*.mjs
node scripts/theme_check.mjs  # Shopify's theme-check on every theme app extension
