#!/usr/bin/env bash
# The test job: install what is needed, build with -Werror, prove the Raft
# core in deterministic simulation (1,000 seeds x 60 simulated seconds at
# -O2, and each planted canary bug caught within 200 seeds), then run every
# test under AddressSanitizer and UndefinedBehaviorSanitizer (make check,
# which includes 100 more simulator seeds under the sanitizers).
# The last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
make -j2
make -j2 sim SEEDS=1000 SIM_SECONDS=60
make -j2 sim-canaries
make -j2 check
