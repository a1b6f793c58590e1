#!/usr/bin/env bash
# Smoke test of the built bundle: start it with --demo --screenshot on an offscreen display,
# check that the picture is not blank, and report the bundle's size and start-up times.
#
#   packaging/smoke_test.sh [BUNDLE_DIR]        (default: dist/embedding-explorer)
#
# Environment: PYTHON (default python3; needs Pillow and numpy, only to judge the PNG),
#              SMOKE_TIMEOUT (seconds for the whole demo run, default 900),
#              SMOKE_OUT (the screenshot, default a temporary file).
# Exit status 0 when every check passed; prints one line per figure/check.
set -euo pipefail

bundle="${1:-dist/embedding-explorer}"
exe="$bundle/embedding-explorer"
[ -x "$exe" ] || exe="$bundle/embedding-explorer.exe"
if [ ! -x "$exe" ]; then
    echo "smoke_test: no executable in $bundle (build it with: make package)" >&2
    exit 2
fi
python="${PYTHON:-python3}"
timeout_s="${SMOKE_TIMEOUT:-900}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shot="${SMOKE_OUT:-$work/screenshot.png}"
rm -f "$shot"

export QT_QPA_PLATFORM=offscreen
export EMBEDDING_EXPLORER_CACHE="$work/cache"   # a first start: empty caches, like a new user

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }   # arithmetic on seconds (no bc needed)

fail=0
check() {  # check NAME CONDITION-EXIT-STATUS DETAIL
    if [ "$2" = 0 ]; then echo "ok    $1: $3"; else echo "FAIL  $1: $3"; fail=1; fi
}

# 1. the bundle runs at all and knows its version
t0=$(date +%s.%N)
version="$("$exe" --version 2>&1)" && rc=0 || rc=$?
t1=$(date +%s.%N)
check "--version" "$rc" "'$version' in $(calc "$t1 - $t0") s"

# 2. the bundled files are found inside the bundle (importlib.resources in the frozen app)
selftest="$(EMBEDDING_EXPLORER_SELFTEST=1 "$exe" 2>&1)" && rc=0 || rc=$?
if [ "$rc" = 0 ]; then
    "$python" - "$bundle" "$selftest" <<'PY' && rc=0 || rc=$?
import json, os, sys
bundle = os.path.realpath(sys.argv[1])
info = json.loads(sys.argv[2].strip().splitlines()[-1])
inside = all(os.path.realpath(info[k]).startswith(bundle + os.sep) for k in ("assets", "sample_data"))
ok = info["frozen"] and inside and info["assets_ok"] and info["sample_data_files"] > 0
print(f"{'ok  ' if ok else 'FAIL'}  resources: assets {info['assets']}, sample data "
      f"{info['sample_data']} ({info['sample_data_files']} files), inside the bundle: {inside}")
sys.exit(0 if ok else 1)
PY
    [ "$rc" = 0 ] || fail=1
else
    check "resources self-test" "$rc" "$selftest"
fi

# 3. the demo opens and renders, twice: a first start (empty caches: numba compiles, the demo
#    embeds and maps) and a second start (warm caches)
run_demo() {  # run_demo LABEL SCREENSHOT
    local label="$1" png="$2" t0 t1 rc total t0_epoch first first_epoch launcher_epoch
    rm -f "$png"
    t0=$(date +%s.%N)   # launch time, compared with the epochs the launcher and app print
    set +e
    # the launcher prints "launcher started at epoch T" and starts the app's clock; the app
    # prints "first window after X s" (counted from that clock)
    EMBEDDING_EXPLORER_TIMING=1 timeout "$timeout_s" "$exe" --demo --screenshot "$png" \
        >"$work/stdout.txt" 2>"$work/stderr.txt"
    rc=$?
    set -e
    t1=$(date +%s.%N)
    total=$(calc "$t1 - $t0")
    t0_epoch=$(printf '%.3f' "$t0")
    first=$(sed -n 's/.*first window after \([0-9.]*\) s.*/\1/p' "$work/stderr.txt" | head -1)
    first_epoch=$(sed -n 's/.*first window.*at epoch \([0-9.]*\).*/\1/p' "$work/stderr.txt" | head -1)
    launcher_epoch=$(sed -n 's/.*launcher started at epoch \([0-9.]*\).*/\1/p' "$work/stderr.txt" | head -1)
    check "demo ($label)" "$rc" "exit code $rc, launch to screenshot written ${total} s"
    if [ -n "$first_epoch" ]; then
        echo "info  launch to first window ($label): $(calc "$first_epoch - $t0_epoch") s"
    elif [ -n "$first" ] && [ -n "$launcher_epoch" ]; then
        echo "info  launch to first window ($label): $(calc "$launcher_epoch - $t0_epoch + $first") s" \
             "(bootloader + interpreter $(calc "$launcher_epoch - $t0_epoch") s, then ${first} s to the window)"
    elif [ -n "$first" ]; then
        echo "info  first window ($label): ${first} s after the app's clock started (as the app reports it)"
    else
        echo "info  launch to first window ($label): not reported (the app prints it when EMBEDDING_EXPLORER_TIMING=1)"
    fi
    if [ "$rc" != 0 ]; then
        echo "----- last lines of the app's stderr -----"
        tail -25 "$work/stderr.txt"
    fi
    # 4. the picture is not blank: enough spread of grey levels, enough distinct colours, and
    #    the map's class colours: vivid pixels in at least 5 of 16 hue bins (the demo colours 10
    #    classes; window chrome is grey, and an error banner or a failed job bar adds only red)
    if [ -s "$png" ]; then
        "$python" - "$png" "$label" <<'PY' && rc=0 || rc=$?
import sys
import numpy as np
from PIL import Image

img = Image.open(sys.argv[1]).convert("RGB")
a = np.asarray(img, dtype=np.float64)
std = float(a.std())
colours = len(np.unique(a.reshape(-1, 3).astype(np.uint8).view([("r", "u1"), ("g", "u1"), ("b", "u1")])))
hsv = np.asarray(img.convert("HSV")).reshape(-1, 3).astype(int)
vivid = (hsv[:, 1] > 100) & (hsv[:, 2] > 80)
hues = int((np.bincount(hsv[vivid, 0] // 16, minlength=16) >= 100).sum())
ok = img.width >= 400 and img.height >= 300 and std > 12.0 and colours > 64 and hues >= 5
print(f"{'ok  ' if ok else 'FAIL'}  screenshot ({sys.argv[2]}): {img.width}x{img.height} px, std {std:.1f} "
      f"(> 12), {colours} distinct colours (> 64), {hues} of 16 hue bins with >= 100 vivid pixels (>= 5)")
sys.exit(0 if ok else 1)
PY
        [ "$rc" = 0 ] || fail=1
    else
        check "screenshot ($label)" 1 "no PNG written at $png"
    fi
}

run_demo "first start, empty caches" "$work/first.png"
run_demo "second start, warm caches" "$shot"

# 5. size on disk
size_h=$(du -sh "$bundle" | cut -f1)
size_mb=$(du -sm "$bundle" | cut -f1)
files=$(find "$bundle" -type f | wc -l)
echo "info  bundle size: $size_h ($size_mb MiB, $files files) at $bundle"
if [ -d "$bundle/_internal" ]; then
    echo "info  largest parts:"
    du -sm "$bundle/_internal"/* 2>/dev/null | sort -rn | head -8 | sed 's/^/        /'
fi

exit "$fail"
