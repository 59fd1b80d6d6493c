#!/usr/bin/env bash
# Boot time to the guest's marker line: morph86's interpreter against QEMU's
# TCG on the same kernel and initramfs (built by scripts/build-guest.sh).
# Several runs each, the median is reported, and the ratio. A benchmark,
# not a test: nothing here asserts a time.
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

# Prints the seconds until the marker appears on the command's stdout.
time_to_marker() {
  local start end
  start=$(date +%s.%N)
  # The command is killed as soon as the marker is seen.
  timeout 1200 "$@" 2>/dev/null | grep -m1 -q "$marker" || true
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

m=(); q=()
for i in $(seq "$runs"); do
  m+=("$(time_to_marker ./target/release/morph86 run --kernel "$kernel" --initrd "$initrd" \
        --append console=ttyS0 --serial stdio --no-reboot --exit-on-serial "$marker")")
  q+=("$(time_to_marker qemu-system-i386 -accel tcg -m 128 -kernel "$kernel" -initrd "$initrd" \
        -append console=ttyS0 -nographic -no-reboot -monitor none -serial stdio)")
done
mm=$(printf '%s\n' "${m[@]}" | median)
qm=$(printf '%s\n' "${q[@]}" | median)
echo "morph86 (interpreter): ${m[*]} s, median $mm s"
echo "qemu-system-i386 -accel tcg: ${q[*]} s, median $qm s"
echo "ratio morph86/qemu: $(echo "scale=2; $mm / $qm" | bc)"
