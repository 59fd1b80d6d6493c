#!/usr/bin/env bash
# CPU-bound jobs inside the Debian i386 guest (built by scripts/build-guest.sh):
# sha256 of 16 MiB of zeros (integer) and an awk loop (x87), under morph86's
# JIT and interpreter and QEMU's TCG, and the same 32-bit busybox run natively
# on the host, which is the limit. Each job is timed from the guest's start
# marker to its end marker on the serial log (the boot is not counted), several
# runs each, in turn; medians and ratios are printed. A benchmark, not a test.
#
#   benches/guest-jobs.sh [RUNS]          (default 3)
#   ENGINES="jit tcg native" benches/guest-jobs.sh 1   (interp is slow: minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
engines=${ENGINES:-"jit tcg interp native"}
kernel=guest/bzImage
initrd=guest/initramfs.cpio.gz
busybox=guest/initramfs/bin/busybox
[ -f "$kernel" ] && [ -f "$initrd" ] || { echo "run scripts/build-guest.sh first" >&2; exit 2; }
cargo build --release -q -p morph86
command -v qemu-system-i386 >/dev/null || { echo "qemu-system-i386 not found (apt-get install qemu-system-x86)" >&2; exit 2; }

now() { date +%s.%N; }
# shellcheck source=benches/markers.sh
. benches/markers.sh

native_job() {
  local s e
  s=$(now)
  case $1 in
  sha256) "$busybox" sh -c 'dd if=/dev/zero bs=1M count=16 2>/dev/null | sha256sum' >/dev/null ;;
  awk) "$busybox" awk 'BEGIN{s=0; for(i=1;i<=300000;i++){s+=(i%7)*1.000001/(i+1.5)}; printf "%.6f\n", s}' >/dev/null ;;
  esac
  e=$(now)
  echo "$e - $s" | bc
}

run_one() {
  local engine=$1 job=$2
  local append="console=ttyS0 morph86.job=$job"
  case $engine in
  jit|interp)
    time_markers MORPH86-JOB-START MORPH86-JOB-END kill ./target/release/morph86 run --engine "$engine" --kernel "$kernel" --initrd "$initrd" \
      --append "$append" --serial file:@LOG@ --no-reboot --display none ;;
  tcg)
    time_markers MORPH86-JOB-START MORPH86-JOB-END kill qemu-system-i386 -accel tcg -m 128 -kernel "$kernel" -initrd "$initrd" \
      -append "$append" -display none -no-reboot -monitor none -serial file:@LOG@ ;;
  native) native_job "$job" ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A times
for job in sha256 awk; do
  for i in $(seq "$runs"); do
    for e in $engines; do
      times[$e.$job]+="$(run_one "$e" "$job") "
    done
  done
done
for job in sha256 awk; do
  declare -A med=()
  for e in $engines; do
    med[$e]=$(printf '%s\n' ${times[$e.$job]} | median)
    echo "$job: $e: ${times[$e.$job]}s, median ${med[$e]} s"
  done
  if [ -n "${med[tcg]:-}" ]; then
    for e in $engines; do
      [ "$e" = tcg ] && continue
      echo "$job: ratio $e/tcg: $(echo "scale=2; ${med[$e]} / ${med[tcg]}" | bc)"
    done
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
