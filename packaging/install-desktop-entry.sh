#!/usr/bin/env bash
# Put Embedding Explorer in the Linux application menu: installs the icon at every size into
# <prefix>/share/icons/hicolor/NxN/apps/embedding-explorer.png (and the SVG as "scalable") and
# the desktop entry into <prefix>/share/applications/.
#
#   packaging/install-desktop-entry.sh                  # per user: prefix ~/.local
#   packaging/install-desktop-entry.sh --prefix /usr/local   # system-wide (run with sudo)
#   packaging/install-desktop-entry.sh --exec /opt/embedding-explorer/embedding-explorer
#                                                       # point Exec= at a bundle, not at PATH
#   packaging/install-desktop-entry.sh --uninstall      # remove what this script installs
#
# Needs `embedding-explorer` on PATH (pipx install . / pip install) unless --exec is given.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
assets="$(cd "$here/../assets" && pwd)"
prefix="${HOME}/.local"
exec_cmd=""
uninstall=0
sizes=(16 24 32 48 64 128 256 512)
name="embedding-explorer"

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --exec) exec_cmd="${2:?--exec needs a command}"; shift 2 ;;
        --exec=*) exec_cmd="${1#--exec=}"; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-desktop-entry.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done

icons="$prefix/share/icons/hicolor"
apps="$prefix/share/applications"

if [ "$uninstall" = 1 ]; then
    for n in "${sizes[@]}"; do rm -f "$icons/${n}x${n}/apps/$name.png"; done
    rm -f "$icons/scalable/apps/$name.svg" "$apps/$name.desktop"
    echo "removed $name's icons and desktop entry from $prefix"
    exit 0
fi

for n in "${sizes[@]}"; do
    src="$assets/icons/app/icon_${n}.png"
    [ -f "$src" ] || { echo "install-desktop-entry.sh: missing $src (run scripts/make_icons.py)" >&2; exit 1; }
    install -D -m 644 "$src" "$icons/${n}x${n}/apps/$name.png"
done
install -D -m 644 "$assets/icon.svg" "$icons/scalable/apps/$name.svg"

mkdir -p "$apps"
if [ -n "$exec_cmd" ]; then
    # Exec= and TryExec= take the bundle's absolute path; quote it if it holds spaces
    case "$exec_cmd" in *" "*) q="\"$exec_cmd\"" ;; *) q="$exec_cmd" ;; esac
    sed -e "s|^Exec=.*|Exec=$q|" -e "s|^TryExec=.*|TryExec=$exec_cmd|" \
        "$here/$name.desktop" > "$apps/$name.desktop"
else
    install -m 644 "$here/$name.desktop" "$apps/$name.desktop"
fi
chmod 644 "$apps/$name.desktop"

if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$apps/$name.desktop"
fi
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true

echo "installed $apps/$name.desktop and icons (${sizes[*]} px + scalable) under $icons"
if [ -z "$exec_cmd" ] && ! command -v "$name" >/dev/null 2>&1; then
    echo "note: '$name' is not on PATH yet; install the app (pipx install .) or pass --exec PATH" >&2
fi
