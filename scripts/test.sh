#!/usr/bin/env bash
# The test job: install what is needed, build with -Werror, and run every
# test under AddressSanitizer and UndefinedBehaviorSanitizer (make check).
# The last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
make -j2
make -j2 check
