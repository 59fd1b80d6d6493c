#!/bin/sh
# The window front end under Xvfb (crates/morph86/tests/window.rs): starts
# `morph86 run --display window` on roms/build/kbd.elf, types into the
# window with xdotool, captures it with xwd, and compares the window, the
# --screenshot and the text screen drawn with the VGA's font, pixel for
# pixel. With --linux it also boots the Linux guest (scripts/build-guest.sh,
# built first if missing) to its VGA text console in the window and runs a
# typed command there (a few minutes).
#
#   scripts/window-test.sh [--linux] [--shots DIR]
#
# --shots DIR saves the window captures as DIR/window-kbd.png and
# DIR/window-linux.png.
#
# Needs Debian's xvfb (xvfb-run), xdotool, x11-apps (xwd) and
# mesa-vulkan-drivers (lavapipe: the software Vulkan adapter that pixels'
# wgpu draws with under Xvfb). It installs nothing: without them it says
# what is missing and exits 0 (skipped).
set -eu
cd "$(dirname "$0")/.."
linux=0
while [ $# -gt 0 ]; do
	case "$1" in
	--linux) linux=1 ;;
	--shots)
		[ $# -ge 2 ] || { echo "window-test: --shots needs a directory" >&2; exit 2; }
		mkdir -p "$2"
		MORPH86_WINDOW_SHOTS=$(cd "$2" && pwd)
		export MORPH86_WINDOW_SHOTS
		shift
		;;
	*) echo "window-test: unknown argument $1 (see the head of this script)" >&2; exit 2 ;;
	esac
	shift
done
missing=
for t in xvfb-run xdotool xwd; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing="$missing lavapipe"
if [ -n "$missing" ]; then
	echo "window-test: skipped: missing$missing" \
		"(Debian: apt-get install xvfb xdotool x11-apps mesa-vulkan-drivers)"
	exit 0
fi
skip="--skip linux"
if [ "$linux" = 1 ]; then
	[ -e guest/bzImage ] || scripts/build-guest.sh
	skip=
fi
# One test at a time (they type into the focused window); a 24-bit screen,
# so the capture holds the exact colours.
exec xvfb-run -a -s "-screen 0 1280x1024x24" \
	cargo test -p morph86 --test window -- --ignored --nocapture --test-threads=1 $skip
