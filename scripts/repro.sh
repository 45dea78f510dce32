#!/usr/bin/env bash
# The main job: set up, then regenerate the study on this machine (`dvc repro`,
# local device, quick profile unless params.yaml says otherwise). Extra arguments
# go to `dvc repro` (e.g. a stage name).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# a refused parameter: one line naming it, exit status 2 (also for a `device` DVC cannot
# even place in dvc.yaml's paths); nothing written
python -m study validate --dry-run
exec dvc repro "$@"
