#!/usr/bin/env bash
# Set up, then run the default matrix (registry.yaml: matrices.default: metaworld-expert,
# random and noop on metaworld_mt10) into ./benchmarks.db; it prints the leaderboard, writes
# the HTML report beside the store (./leaderboard.html) and names the next commands to try.
# Arguments go to `vlabench matrix` (e.g. `scripts/demo.sh -n 2` for 2 episodes per task).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MUJOCO_GL="${MUJOCO_GL:-egl}" .venv/bin/vlabench matrix "$@"
