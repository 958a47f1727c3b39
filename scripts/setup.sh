#!/usr/bin/env bash
# Set up vlabench from a clean checkout: system libraries for headless rendering, uv,
# a Python 3.12 virtual environment in .venv with every extra this machine can install.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [extra uv sync args]
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System libraries (Debian/Ubuntu): OpenGL/EGL for cv2 and headless renderers.
APT_PACKAGES=(libgl1 libglib2.0-0 libegl1)
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

# 2. uv (from PyPI when it is not on PATH).
if ! command -v uv >/dev/null; then
  echo "setup: installing uv"
  python3 -m pip install --quiet --user "uv>=0.5" || python3 -m pip install --quiet "uv>=0.5"
  export PATH="$HOME/.local/bin:$PATH"
fi

# 3. A Python 3.12: $UV_PYTHON, one uv already knows, pyenv's, or one uv installs.
if [ -z "${UV_PYTHON:-}" ]; then
  if py=$(uv python find 3.12 2>/dev/null); then
    export UV_PYTHON="$py"
  elif command -v pyenv >/dev/null && pyenv versions --bare | grep -q '^3\.12'; then
    export UV_PYTHON="$(pyenv prefix "$(pyenv versions --bare | grep '^3\.12' | tail -1)")/bin/python3.12"
  else
    uv python install 3.12
    export UV_PYTHON=3.12
  fi
fi
echo "setup: python $UV_PYTHON"

# 4. The locked environment: core, every simulator extra, dev tools.
export UV_LINK_MODE="${UV_LINK_MODE:-copy}"
# Bytecode compiled at install: start-up must not recompile sources on every run
# (matters where PYTHONDONTWRITEBYTECODE is set, as on CI machines).
uv sync --locked --all-extras --compile-bytecode "$@"
echo "setup: done; run .venv/bin/vlabench --help"
