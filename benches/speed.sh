#!/usr/bin/env bash
# The JIT's speed acceptance in one run: the Linux guest's boot to its marker
# (benches/boot-time.sh), the CPU-bound jobs inside it (benches/guest-jobs.sh)
# and the bare-metal compute kernel (benches/compute.sh), each under morph86's
# JIT and interpreter and QEMU's TCG (the jobs also natively), several runs
# each in alternation, with medians and ratios. A benchmark, not a test.
#
#   benches/speed.sh [RUNS]                 (default 3)
#   ENGINES="jit tcg" benches/speed.sh 5    (without the interpreter: minutes
#                                            a run; the jobs add "native")
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-3}
echo "== boot to the marker"
./boot-time.sh "$runs"
echo "== jobs in the guest"
ENGINES="${ENGINES:+$ENGINES native}" ./guest-jobs.sh "$runs"
echo "== bare-metal compute kernel"
./compute.sh "$runs"
