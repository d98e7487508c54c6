#!/usr/bin/env bash
# Set up everything Interlayer needs on a Debian machine; safe to run again.
#   scripts/setup.sh            Python environment (.venv) with the pinned requirements
#   scripts/setup.sh --system   also the Debian packages (PostgreSQL, Chromium) when missing
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
for arg in "$@"; do [[ "$arg" == "--system" ]] && want_system=1; done

if [[ $want_system == 1 ]]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # the storefront load benchmark
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the multi-process check
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)  # the JavaScript linter
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)  # the front's check
  if ((${#missing[@]})); then
    echo "==> installing Debian packages: ${missing[*]}"
    if [[ $(id -u) == 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  echo "==> installing Python requirements (first run takes a few minutes)"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import django, faiss, sentence_transformers, shopify_app" \
    || { echo "Python requirements failed to install" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi

# The JavaScript linter (package-lock.json pins it), installed where npm is.
if command -v npm >/dev/null 2>&1; then
  npm_stamp=node_modules/.package-lock.sha256
  npm_wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [[ ! -f $npm_stamp || $(cat "$npm_stamp") != "$npm_wanted" ]]; then
    echo "==> installing the JavaScript linter (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error 2>&1 | grep -v "Unknown user config" || true
    [[ -x node_modules/.bin/eslint ]] || { echo "npm ci failed" >&2; exit 1; }
    echo "$npm_wanted" > "$npm_stamp"
  fi
fi

# The int8 ONNX embedding model, built offline from the packaged weights (once).
if [[ ! -f var/models/all-minilm-l6-v2-int8-mha.onnx ]]; then  # embedding.ONNX_FILENAME
  echo "==> building the embedding model (int8 ONNX, offline)"
  HF_HUB_OFFLINE=1 .venv/bin/python -m recommender.ranking.embedding var/models 2>&1 | grep -v -i warn | tail -n 1
fi
