#!/usr/bin/env bash
# Fresh-machine test run: system packages for the browser test, the dev install, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_system.sh
bash scripts/setup_env.sh dev
exec .venv/bin/python -m pytest -q -ra "$@"
