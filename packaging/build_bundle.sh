#!/usr/bin/env bash
# Build the one-folder Linux application with PyInstaller:
#   packaging/build_bundle.sh            -> dist/cxrgan-desktop/{cxrgan-desktop,cxrgan,...}
# Uses the project's .venv (scripts/setup.sh makes it) and installs the `bundle` extra
# (PyInstaller) into it. The bundle carries whatever torch the venv has: the CPU build by
# default; `TORCH_SPEC=torch scripts/setup.sh` first for a CUDA bundle (several GB more).
# At the end it prints the bundle's size and runs its self-test when a model is at hand
# (SELF_TEST_MODEL=FILE, or an installed or bundled one).
set -euo pipefail
cd "$(dirname "$0")/.."
python=".venv/bin/python"
[ -x "$python" ] || { echo "no .venv: run scripts/setup.sh first" >&2; exit 1; }
"$python" -m pip install -q -e ".[bundle]"
"$python" packaging/make_icons.py
"$python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/cxrgan-desktop.spec
bundle="dist/cxrgan-desktop"
cp packaging/cxrgan-desktop.desktop packaging/io.github.cxrgan_desktop.metainfo.xml "$bundle/"
mkdir -p "$bundle/icons"
cp resources/icons/*.png resources/icons/cxrgan-desktop.svg "$bundle/icons/"
cp packaging/install_bundle.sh "$bundle/install.sh"
echo "built $bundle: $(du -sh "$bundle" | cut -f1), $(find "$bundle" -type f | wc -l) files" >&2
if [ -n "${SELF_TEST_MODEL:-}" ]; then
    QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$bundle/cxrgan-desktop" \
        --self-test build/self_test.png --model "$SELF_TEST_MODEL"
fi
