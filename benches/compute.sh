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

now() { date +%s.%N; }

# Instructions morph86 counts for the whole run with `rounds=$1` (the
# kernel's exit status is 33: it passed).
count() {
  { ./target/release/morph86 run --engine jit --kernel "$kernel" --append "rounds=$1" --exit-port \
    --no-reboot --display none --serial none 2>&1 || true; } | sed -n 's/^morph86: \([0-9]*\) instructions.*/\1/p'
}
work=$(( $(count "$rounds") - $(count 0) ))

digests=$(mktemp)
# Seconds between the markers in the serial log the command (with @LOG@
# replaced by the file's name) writes; the digest goes to $digests.
time_work() {
  local log pid start="" end=""
  log=$(mktemp)
  local args=()
  for a in "$@"; do args+=("${a//@LOG@/$log}"); done
  "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$start" ] && grep -q "COMPUTE-START" "$log" 2>/dev/null; then start=$(now); fi
    if [ -n "$start" ] && grep -q "COMPUTE-END" "$log" 2>/dev/null; then end=$(now); break; fi
    sleep 0.005
  done
  if [ -n "$start" ] && [ -z "$end" ] && grep -q "COMPUTE-END" "$log" 2>/dev/null; then end=$(now); fi
  wait "$pid" 2>/dev/null || true
  grep -o 'COMPUTE-END.*' "$log" | tr -d '\r' >>"$digests" || true
  rm -f "$log"
  [ -n "$start" ] && [ -n "$end" ] || { echo "NaN"; return; }
  echo "$end - $start" | bc
}

run_one() {
  case $1 in
  jit|interp)
    time_work ./target/release/morph86 run --engine "$1" --kernel "$kernel" --append "rounds=$rounds" \
      --exit-port --no-reboot --display none --serial file:@LOG@ ;;
  tcg)
    time_work qemu-system-i386 -accel tcg -cpu pentium3 -m 128 -kernel "$kernel" -append "rounds=$rounds" \
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
if [ "$(sort -u "$digests" | wc -l)" -ne 1 ]; then
  echo "the engines disagree:" >&2
  sort "$digests" | uniq -c >&2
  rm -f "$digests"
  exit 1
fi
echo "every run: $(head -1 "$digests")"
rm -f "$digests"
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
