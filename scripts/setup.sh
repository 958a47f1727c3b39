#!/usr/bin/env bash
# Set up vlabench from a clean checkout: system libraries for headless rendering, uv,
# a Python 3.12 virtual environment in .venv with every extra this machine can install.
# Idempotent: a second run only checks.
# Usage: scripts/setup.sh [--test] [extra uv sync args]
#   --test  also installs what the test suite needs from Debian (PostgreSQL, Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST_SERVICES=0
if [ "${1:-}" = "--test" ]; then WITH_TEST_SERVICES=1; shift; fi

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=0
apt_install() {  # apt_install [-t RELEASE] PKG...: installs only the missing ones
  local release=()
  if [ "$1" = "-t" ]; then release=(-t "$2"); shift 2; fi
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]}"
  if ((!apt_updated)); then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${release[@]}" "${missing[@]}"
}

# 1. System libraries (Debian): OpenGL/EGL for MuJoCo and cv2, libusb for pyrealsense2,
#    and Vulkan for SAPIEN/ManiSkill3. Bookworm's stock Mesa 22 cannot run SAPIEN 3 (not even
#    in state mode); the Mesa of bookworm-backports can, so its source is added on bookworm.
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  apt_install libgl1 libglib2.0-0 libegl1 libosmesa6 libusb-1.0-0 libvulkan1
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [ "$codename" = "bookworm" ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "setup: adding the bookworm-backports source (Mesa with Vulkan for SAPIEN)"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
      apt_updated=0
    fi
    if ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q bpo; then
      echo "setup: installing mesa-vulkan-drivers from bookworm-backports"
      if ((!apt_updated)); then $SUDO apt-get update -qq; apt_updated=1; fi
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports \
        mesa-vulkan-drivers
    fi
  else
    apt_install mesa-vulkan-drivers
  fi
  if ((WITH_TEST_SERVICES)); then
    apt_install postgresql chromium
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
