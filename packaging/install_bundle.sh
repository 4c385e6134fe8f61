#!/usr/bin/env bash
# Install this cxrgan-desktop folder for the current user: the programs on PATH
# (~/.local/bin), the desktop entry, icons and AppStream metadata. Run it from the folder:
#   ./install.sh            (or: ./install.sh --uninstall)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
share="${XDG_DATA_HOME:-$HOME/.local/share}"
bin="$HOME/.local/bin"
if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$bin/cxrgan-desktop" "$bin/cxrgan" "$share/applications/cxrgan-desktop.desktop" \
        "$share/metainfo/io.github.cxrgan_desktop.metainfo.xml" \
        "$share/icons/hicolor/scalable/apps/cxrgan-desktop.svg"
    find "$share/icons/hicolor" -name cxrgan-desktop.png -delete 2>/dev/null || true
    echo "removed the links and desktop files (this folder is left as it is)"
    exit 0
fi
mkdir -p "$bin" "$share/applications" "$share/metainfo" "$share/icons/hicolor/scalable/apps"
ln -sf "$here/cxrgan-desktop" "$bin/cxrgan-desktop"
ln -sf "$here/cxrgan" "$bin/cxrgan"
sed "s|^Exec=cxrgan-desktop|Exec=$here/cxrgan-desktop|" "$here/cxrgan-desktop.desktop" \
    > "$share/applications/cxrgan-desktop.desktop"
cp "$here/io.github.cxrgan_desktop.metainfo.xml" "$share/metainfo/"
cp "$here/icons/cxrgan-desktop.svg" "$share/icons/hicolor/scalable/apps/"
for png in "$here"/icons/cxrgan-desktop-*.png; do
    size="$(basename "$png" .png)"; size="${size##*-}"
    mkdir -p "$share/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$share/icons/hicolor/${size}x${size}/apps/cxrgan-desktop.png"
done
echo "installed: cxrgan-desktop and cxrgan in $bin, the desktop entry in $share/applications"
