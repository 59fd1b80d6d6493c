#!/usr/bin/env bash
# Guest instructions per second on a bare-metal compute kernel
# (roms/src/compute.c: SHA-256 and a sieve, built by roms/build.sh) under
# morph86's JIT and interpreter and QEMU's TCG. Each engine runs the same
# ROUNDS of work between the kernel's COMPUTE-START and COMPUTE-END serial
# lines, timed from the serial log (the boot is not counted), several runs
# each, in turn. The work's instruction count is morph86's count of the run
# with ROUNDS less that of the run with none (the kernel is deterministic);
# every engine must print the same final digest. Medians and ratios are
# printed. A benchmark, not a test: nothing here asserts a time.
#
#   benches/compute.sh [RUNS] [ROUNDS]      (defaults 3 and 256)
#   ENGINES="jit tcg" benches/compute.sh    (the interpreter takes a minute a run)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
rounds=${2:-256}
engines=${ENGINES:-"jit tcg interp"}
kernel=roms/build/compute.elf
cargo build --release -q -p morph86
[ -f "$kernel" ] && [ "$kernel" -nt roms/src/compute.c ] || sh roms/build.sh >/dev/null
command -v qemu-system-i386 >/dev/null || { echo "qemu-system-i386 not found (apt-get install qemu-system-x86)" >&2; exit 2; }

# Instructions morph86 counts for the whole run with `rounds=$1` (the
# kernel's exit status is 33: it passed).
count() {
  { ./target/release/morph86 run --engine jit --kernel "$kernel" --append "rounds=$1" --exit-port \
    --no-reboot --display none --serial none 2>&1 || true; } | sed -n 's/^morph86: \([0-9]*\) instructions.*/\1/p'
}
work=$(( $(count "$rounds") - $(count 0) ))

# Every run's COMPUTE-END line (with the digest) goes here.
END_LINES=$(mktemp)
# shellcheck source=benches/markers.sh
. benches/markers.sh

run_one() {
  case $1 in
  jit|interp)
    time_markers COMPUTE-START COMPUTE-END wait ./target/release/morph86 run --engine "$1" --kernel "$kernel" --append "rounds=$rounds" \
      --exit-port --no-reboot --display none --serial file:@LOG@ ;;
  tcg)
    time_markers COMPUTE-START COMPUTE-END wait qemu-system-i386 -accel tcg -cpu pentium3 -m 128 -kernel "$kernel" -append "rounds=$rounds" \
      -display none -no-reboot -monitor none -serial file:@LOG@ \
      -device isa-debug-exit,iobase=0xf4,iosize=0x04 ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work: $rounds rounds, $work guest instructions"
declare -A times
for i in $(seq "$runs"); do
  for e in $engines; do
    times[$e]+="$(run_one "$e") "
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$(sort -u "$END_LINES" | wc -l)" -ne 1 ]; then
  echo "the engines disagree:" >&2
  sort "$END_LINES" | uniq -c >&2
  rm -f "$END_LINES"
  exit 1
fi
echo "every run: $(head -1 "$END_LINES")"
rm -f "$END_LINES"
declare -A med
for e in $engines; do
  # shellcheck disable=SC2086
  med[$e]=$(printf '%s\n' ${times[$e]} | median)
  printf '%s: %s s, median %s s, %s M guest instructions/s\n' "$e" "${times[$e]}" "${med[$e]}" \
    "$(echo "scale=1; $work / ${med[$e]} / 1000000" | bc)"
done
if [[ " $engines " == *" tcg "* ]]; then
  for e in $engines; do
    [ "$e" = tcg ] || echo "ratio $e/tcg (time): $(echo "scale=2; ${med[$e]} / ${med[tcg]}" | bc)"
  done
fi
