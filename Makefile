.PHONY: setup demo test lint format

setup:          ## install everything (Debian packages, .venv) — safe to run again
	scripts/setup.sh --system

demo:           ## the whole exchange: simulator, app, worker, demo stores installed
	scripts/demo.sh

test:           ## set up and run the tests against PostgreSQL
	scripts/test.sh

lint:           ## ruff, eslint and Shopify's theme-check, as .ci/run runs them
	scripts/lint.sh

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
