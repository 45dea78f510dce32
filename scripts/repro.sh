#!/usr/bin/env bash
# The main job: set up, then regenerate the study on this machine (`dvc repro`,
# local device, quick profile unless params.yaml says otherwise). Extra arguments
# go to `dvc repro` (e.g. a stage name).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec dvc repro "$@"
