#!/bin/sh
# Runs each Multiboot test kernel under QEMU (a cross-check only: QEMU's TCG
# has known bugs; the kernels follow the Intel SDM) and prints its summary.
#
#   scripts/qemu-crosscheck.sh [kernel-name...]     (default: every kernel)
#
# Needs qemu-system-i386 (Debian: qemu-system-x86). Builds the kernels first.
# A kernel passes when its SUMMARY line shows 0 failed and QEMU exits with 33
# (the kernel wrote 0x10 to isa-debug-exit); `faults` ends with a deliberate
# triple fault instead, which -no-reboot turns into exit status 0.
#
# Each kernel gets QEMU's command line "roms/build/NAME.elf"; `modules` also
# gets -append and two modules with arguments through -initrd, as
# tests/roms.rs passes them to morph86; `ata` gets a fresh disk image and
# CD image (made with python3, as tests/roms.rs makes them) on the primary
# and secondary masters.
set -u
cd "$(dirname "$0")/.."
roms/build.sh >/dev/null || exit 2
QEMU=${QEMU:-qemu-system-i386}
CPU=${QEMU_CPU:-pentium3}
TIMEOUT=${TIMEOUT:-20}
if [ $# -eq 0 ]; then
	# kbd waits for keys (the window test drives it), so it is left out.
	set -- $(ls roms/build/*.elf | sed 's|.*/||; s|\.elf$||' | grep -vx kbd)
fi
bad=0
for k in "$@"; do
	tmp=$(mktemp)
	if [ "$k" = ata ]; then
		img=$(mktemp -d)
		python3 -c "
import sys
d = sys.argv[1]
open(d + '/hd.img', 'wb').write(bytes((s * 37 + i + (i >> 8) * 11) & 255 for s in range(128) for i in range(512)))
open(d + '/cd.iso', 'wb').write(bytes((s * 13 + i * 5 + (i >> 8)) & 255 for s in range(16) for i in range(2048)))
" "$img"
		timeout "$TIMEOUT" "$QEMU" -cpu "$CPU" -m 128 -kernel "roms/build/$k.elf" \
			-drive "file=$img/hd.img,format=raw,if=ide,index=0" \
			-drive "file=$img/cd.iso,format=raw,if=ide,index=2,media=cdrom" \
			-serial stdio -display none -no-reboot -monitor none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 >"$tmp" 2>&1
		status=$?
		rm -rf "$img"
	elif [ "$k" = modules ]; then
		timeout "$TIMEOUT" "$QEMU" -cpu "$CPU" -m 128 -kernel "roms/build/$k.elf" \
			-append "modtest one two" \
			-initrd "roms/build/module-a.txt alpha=1 list=x,,y,roms/build/module-b.txt second arg" \
			-serial stdio -display none -no-reboot -monitor none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 >"$tmp" 2>&1
		status=$?
	else
		timeout "$TIMEOUT" "$QEMU" -cpu "$CPU" -m 128 -kernel "roms/build/$k.elf" \
			-serial stdio -display none -no-reboot -monitor none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 >"$tmp" 2>&1
		status=$?
	fi
	out=$(tr -d '\r' <"$tmp")
	rm -f "$tmp"
	summary=$(printf '%s\n' "$out" | grep '^SUMMARY:' | tail -1)
	want=33
	[ "$k" = faults ] && want=0
	printf '%-10s %-36s exit %s\n' "$k" "${summary:-no summary}" "$status"
	printf '%s\n' "$out" | grep '^FAIL' | sed 's/^/           /'
	case "$summary" in
	*" 0 failed") [ "$status" = "$want" ] || bad=1 ;;
	*) bad=1 ;;
	esac
done
exit $bad
