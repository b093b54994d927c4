#!/usr/bin/env bash
# Set up (or refresh) the environment, then lint, type-check and run every test, slow ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy model service clients
.venv/bin/python -m pytest -q "$@"
