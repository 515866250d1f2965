#!/usr/bin/env bash
# Prove that the simulator bites: each canary build of the Raft core
# (-DRAFT_CANARY=k, built by `make sim-canaries` into $BUILD/sim-canary-k)
# plants one known bug, and the simulator must catch it within 200 seeds.
#   1  commit of an earlier-term entry by counting replicas (§3.6.2, Figure 8)
#   2  a vote granted before it is persisted
#   3  a lease read without the clock-drift bound (§6.4.1)
#   4  a follower acknowledging entries before they are persisted
# For each canary it prints the first seed that caught it and the check that
# fired. A catch counts only if the same seed passes on the normal build
# ($BUILD/sim/raft_sim, the control); otherwise the search goes on from the
# next seed. Exits 1 if any canary survives. NO_CONTRACT=1 turns off the
# direct durable-before-send checks so that only the end-to-end properties
# can catch canaries 2 and 4.
set -uo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
SIM_SECONDS=${SIM_SECONDS:-60}
SIM_JOBS=${SIM_JOBS:-2}
CANARY_SEEDS=${CANARY_SEEDS:-200}
control="$BUILD/sim/raft_sim"
extra=()
[ "${NO_CONTRACT:-0}" = 1 ] && extra+=(--no-contract)

names=("" "commit an earlier-term entry by counting" "vote granted before it is persisted"
	"lease read without the drift bound" "follower acks before fsync")
if [ ! -x "$control" ]; then
	echo "run-canaries: $control is missing (make sim-canaries builds it)"
	exit 1
fi
survived=0
for k in 1 2 3 4; do
	bin="$BUILD/sim-canary-$k/raft_sim"
	if [ ! -x "$bin" ]; then
		echo "canary $k: $bin is missing (run make sim-canaries)"
		survived=1
		continue
	fi
	t0=$SECONDS
	start=1
	caught=""
	notes=""
	while [ "$start" -le "$CANARY_SEEDS" ] && [ -z "$caught" ]; do
		out=$("$bin" --seeds "$start..$CANARY_SEEDS" --sim-seconds "$SIM_SECONDS" \
			-j "$SIM_JOBS" "${extra[@]}" 2>/dev/null)
		first=$(printf '%s\n' "$out" | grep '^FIRST FAILURE:' | head -1)
		[ -z "$first" ] && break
		seed=$(printf '%s\n' "$first" | sed -E 's/^FIRST FAILURE: seed ([0-9]+) .*/\1/')
		if "$control" --seed "$seed" --sim-seconds "$SIM_SECONDS" "${extra[@]}" \
			>/dev/null 2>&1; then
			caught=$first
		else
			notes+="    (seed $seed fails without the canary too: not counted)"$'\n'
			start=$((seed + 1))
		fi
	done
	printf '%s' "$notes"
	if [ -n "$caught" ]; then
		seed=$(printf '%s\n' "$caught" | sed -E 's/^FIRST FAILURE: seed ([0-9]+) check ([^ ]+).*/\1/')
		check=$(printf '%s\n' "$caught" | sed -E 's/^FIRST FAILURE: seed ([0-9]+) check ([^ ]+).*/\2/')
		printf 'canary %d (%s): caught by seed %s, check %s (%ds)\n' "$k" "${names[$k]}" \
			"$seed" "$check" $((SECONDS - t0))
		printf '%s\n' "$caught" | sed 's/^FIRST FAILURE: /    /'
	else
		printf 'canary %d (%s): SURVIVED %s seeds (%ds)\n' "$k" "${names[$k]}" \
			"$CANARY_SEEDS" $((SECONDS - t0))
		survived=1
	fi
done
exit $survived
