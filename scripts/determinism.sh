#!/usr/bin/env bash
# Runs the Linux guest twice under the virtual clock, with engine batch
# sizes 65536 and 1, recording the event log (every interrupt, exception and
# device access with its instruction count) and the serial output, and
# checks that both runs are identical. With the guest's morph86.poweroff
# command line the guest powers off by itself once booted, so a run needs
# no input.
#
#   scripts/determinism.sh [INSTRUCTIONS]   (default: the whole boot to poweroff)
#
# Needs guest/ (scripts/build-guest.sh) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-}
bin=./target/release/morph86
[ -x "$bin" ] || cargo build --release -q -p morph86
[ -f guest/bzImage ] && [ -f guest/initramfs.cpio.gz ] || { echo "run scripts/build-guest.sh first" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
stop=()
[ -n "$limit" ] && stop=(--stop-at "insns:$limit")
for batch in 65536 1; do
  "$bin" run --kernel guest/bzImage --initrd guest/initramfs.cpio.gz \
    --append "console=ttyS0 morph86.poweroff" --serial "file:$out/serial.$batch" \
    --event-log "$out/events.$batch" --batch "$batch" --no-reboot "${stop[@]}" 2>"$out/status.$batch"
  tail -1 "$out/status.$batch"
done
lines=$(wc -l <"$out/events.65536")
[ "$lines" -gt 0 ] || { echo "determinism: the event log is empty" >&2; exit 1; }
if cmp -s "$out/events.65536" "$out/events.1" && cmp -s "$out/serial.65536" "$out/serial.1"; then
  echo "determinism: event logs ($lines events) and serial output identical with batch sizes 65536 and 1"
else
  diff <(head -c 100000000 "$out/events.65536") <(head -c 100000000 "$out/events.1") | head -5 >&2 || true
  echo "determinism: the runs differ" >&2
  exit 1
fi
