#!/usr/bin/env bash
# Everything the study needs, on a fresh Debian machine that has Python >= 3.11:
# system packages (apt-get), a virtual environment in .venv, the pinned Python
# packages (requirements/constraints.txt: no resolver backtracking), a git repo for DVC.
# Idempotent: a second call with unchanged pins installs nothing.
#   scripts/setup.sh          what `dvc repro` needs
#   scripts/setup.sh --test   plus what the tests need (adb server, headless Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

need=()
command -v git >/dev/null 2>&1 || need+=(git)
if [ "$with_tests" = 1 ]; then
  command -v adb >/dev/null 2>&1 || need+=(adb)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ "${#need[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" != 0 ] && sudo="sudo"
    echo "setup: apt-get install ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: please install ${need[*]} (no apt-get here)" >&2
  fi
fi

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(cat requirements/constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing pinned packages into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade "pip>=24"
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# DVC needs a git repository (a clone has one; an unpacked archive does not)
[ -d .git ] || git init -q
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/dvc --version 2>/dev/null | head -1) dvc)"
