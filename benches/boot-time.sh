#!/usr/bin/env bash
# Boot time to the guest's marker line: morph86's JIT and interpreter against
# QEMU's TCG on the same kernel and initramfs (built by scripts/build-guest.sh).
# Several runs each, in turn, the medians are reported, and the ratios. A
# benchmark, not a test: nothing here asserts a time.
#
#   benches/boot-time.sh [RUNS]      (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
kernel=guest/bzImage
initrd=guest/initramfs.cpio.gz
marker=MORPH86-GUEST-READY
[ -f "$kernel" ] && [ -f "$initrd" ] || { echo "run scripts/build-guest.sh first" >&2; exit 2; }
cargo build --release -q -p morph86
command -v qemu-system-i386 >/dev/null || { echo "qemu-system-i386 not found (apt-get install qemu-system-x86)" >&2; exit 2; }

# Prints the seconds until the marker appears in the serial log file that
# the command (with @LOG@ replaced by the file's name) writes; then stops it.
time_to_marker() {
  local log start end pid
  log=$(mktemp)
  local args=()
  for a in "$@"; do args+=("${a//@LOG@/$log}"); done
  start=$(date +%s.%N)
  "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  while ! grep -q "$marker" "$log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  end=$(date +%s.%N)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# ENGINES="jit tcg" leaves out the interpreter (minutes per boot).
engines=" ${ENGINES:-jit interp tcg} "
m=(); j=(); q=()
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
  [[ $engines == *" jit "* ]] && j+=("$(time_to_marker ./target/release/morph86 run --engine jit --kernel "$kernel" --initrd "$initrd" \
        --append console=ttyS0 --serial file:@LOG@ --no-reboot --display none --exit-on-serial "$marker")")
  [[ $engines == *" interp "* ]] && m+=("$(time_to_marker ./target/release/morph86 run --kernel "$kernel" --initrd "$initrd" \
        --append console=ttyS0 --serial file:@LOG@ --no-reboot --display none --exit-on-serial "$marker")")
  [[ $engines == *" tcg "* ]] && q+=("$(time_to_marker qemu-system-i386 -accel tcg -m 128 -kernel "$kernel" -initrd "$initrd" \
        -append console=ttyS0 -display none -no-reboot -monitor none -serial file:@LOG@)")
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ ${#m[@]} -gt 0 ] || m=(NaN)
[ ${#j[@]} -gt 0 ] || j=(NaN)
[ ${#q[@]} -gt 0 ] || q=(NaN)
mm=$(printf '%s\n' "${m[@]}" | median)
jm=$(printf '%s\n' "${j[@]}" | median)
qm=$(printf '%s\n' "${q[@]}" | median)
# Only the engines that ran are reported.
[ "$jm" = NaN ] || echo "morph86 (JIT): ${j[*]} s, median $jm s"
[ "$mm" = NaN ] || echo "morph86 (interpreter): ${m[*]} s, median $mm s"
[ "$qm" = NaN ] || echo "qemu-system-i386 -accel tcg: ${q[*]} s, median $qm s"
if [ "$qm" != NaN ]; then
  [ "$jm" = NaN ] || echo "ratio morph86 JIT/qemu: $(echo "scale=2; $jm / $qm" | bc)"
  [ "$mm" = NaN ] || echo "ratio morph86 interpreter/qemu: $(echo "scale=2; $mm / $qm" | bc)"
fi
