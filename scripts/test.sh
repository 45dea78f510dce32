#!/usr/bin/env bash
# The tests: set up (with the test tools), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest -q -ra "$@"
