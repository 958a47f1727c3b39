#!/usr/bin/env bash
# Set up, then run the default matrix (registry.yaml: matrices.default) into ./benchmarks.db
# and print the leaderboard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/vlabench matrix "$@"
