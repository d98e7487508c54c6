#!/usr/bin/env bash
# The README's main command: set up everything, then run the whole exchange locally.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system
exec .venv/bin/python scripts/demo.py "$@"
