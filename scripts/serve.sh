#!/usr/bin/env bash
# Set up (or refresh) the environment, then serve the bundled model on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sts-server "$@"
