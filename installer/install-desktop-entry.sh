#!/bin/sh
# Add ECG Studio to this user's applications menu (no root needed); run it from the
# unpacked ECGStudio folder, again after moving that folder.  Removing:
#   rm ~/.local/share/applications/ecgstudio.desktop ~/.local/share/icons/hicolor/256x256/apps/ecgstudio.png
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
icons="$data/icons/hicolor/256x256/apps"
mkdir -p "$apps" "$icons"
cp "$here/ecgstudio.png" "$icons/ecgstudio.png"
sed -e "s|^Exec=.*|Exec=\"$here/ECGStudio\" gui %F|" -e "s|^TryExec=.*|TryExec=$here/ECGStudio|" \
    "$here/ecgstudio.desktop" > "$apps/ecgstudio.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "ECG Studio is in the applications menu ($apps/ecgstudio.desktop)"
