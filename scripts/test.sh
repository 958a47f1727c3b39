#!/usr/bin/env bash
# Set up, then lint and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONUNBUFFERED=1
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache  # the layering contracts in pyproject.toml
.venv/bin/python -m pytest -ra --durations=15 "$@"
