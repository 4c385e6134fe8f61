#!/usr/bin/env bash
# Set up cxrgan-desktop on a fresh Debian/Ubuntu machine: system libraries Qt needs (when run
# as root or with sudo), then a virtual environment in .venv with the package installed.
#   scripts/setup.sh           the application
#   scripts/setup.sh --test    plus test tools (pytest, pytest-qt, ruff, Xvfb, dicom3tools)
# TORCH_SPEC chooses the PyTorch build: the default pins the CPU build these machines carry;
# TORCH_SPEC=torch installs the default (CUDA) build from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

qt_libs="libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libxkbcommon0 libx11-6
 libdbus-1-3 fonts-dejavu-core libxcb1 libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0
 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render0 libxcb-render-util0
 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1"
test_tools="xvfb xauth x11-apps dicom3tools dcmtk"

if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
        packages="$qt_libs"
        [ "$with_tests" = 1 ] && packages="$packages $test_tools"
        # shellcheck disable=SC2086
        if ! dpkg -s $packages >/dev/null 2>&1; then
            echo "installing system packages (apt-get)" >&2
            $sudo apt-get update -qq
            # shellcheck disable=SC2086
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
                $packages >/dev/null
        fi
    else
        echo "note: not root and no sudo: install Qt's libraries yourself if the app fails" >&2
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="[dicom-codecs]"
[ "$with_tests" = 1 ] && extras="[dicom-codecs,test]"
# torch is pinned on the same command line so that the range in pyproject.toml is already met
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" -e ".${extras}"
echo "set up: .venv (cxrgan $(.venv/bin/python -c 'import cxrgan_desktop as c; print(c.__version__)'))" >&2
