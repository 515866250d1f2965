#!/usr/bin/env bash
# make demo: the service shape of the design, live on a 5-node cluster.
#
# Installs (scripts/deps.sh), builds, starts 5 nodes, creates a strong
# `models` keyspace and a causal feature view `user`, then for about
# DEMO_SECONDS (40) runs scripts/demo.py: a model registry whose jobs
# register and promote versions (and race one promotion in every three),
# a feature pipeline writing batches (some late, some out of order), and a
# serving fleet of threads, each a ConsistentModelService
# (examples/python/model_service.py) on its own node, reading the
# production model strongly and the features causally. At 35% of the run
# the Raft leader is killed with kill -9; at 65% it is restarted. Then it
# prints a report and exits 1 if any claim in it does not hold.
#
# Environment: BASE_PORT (7479), PEER_BASE_PORT (8479), HTTP_BASE_PORT
# (9479): node i gets PORT+i-1. DEMO_SECONDS (40), DEMO_FLEET (6 threads).
# DEMO_KEEP=1 leaves the cluster running (and says how to stop it).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE_PORT:-7479}
PEER=${PEER_BASE_PORT:-8479}
HTTP=${HTTP_BASE_PORT:-9479}
SECONDS_RUN=${DEMO_SECONDS:-40}
FLEET=${DEMO_FLEET:-6}
NODES=5

scripts/deps.sh
make -j2 >/dev/null

for b in "$BASE" "$PEER" "$HTTP"; do
	for i in $(seq 0 $((NODES - 1))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$((b + i))") 2>/dev/null; then
			echo "demo: port $((b + i)) is in use; pick others with BASE_PORT, PEER_BASE_PORT, HTTP_BASE_PORT" >&2
			exit 1
		fi
	done
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/spectra-demo.XXXXXX")
keep=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [ "$keep" = 1 ]; then
		echo
		echo "cluster left running in $DIR (DEMO_KEEP=1): bin/spectra cluster status --dir $DIR"
		echo "stop it with: bin/spectra cluster down --dir $DIR && rm -rf $DIR"
		return
	fi
	bin/spectra cluster down --dir "$DIR" --timeout 5 >/dev/null 2>&1 || true
	for p in "$DIR"/node-*/spectrad.pid; do
		if [ -f "$p" ]; then kill -9 "$(cat "$p")" 2>/dev/null || true; fi
	done
	rm -rf "$DIR"
}
trap cleanup EXIT

echo "== a 5-node cluster in $DIR (clients on $BASE..$((BASE + NODES - 1)))"
bin/spectra cluster up --nodes "$NODES" --dir "$DIR" --base-port "$BASE" --peer-base-port "$PEER" \
	--http-base-port "$HTTP" >"$DIR/up.out" 2>&1 || { cat "$DIR/up.out"; exit 1; }
grep -E '^(  node|leader)' "$DIR/up.out" || true
cli() { redis-cli -p "$BASE" "$@"; }
[ "$(cli KEYSPACE CREATE models MODE strong)" = OK ]
[ "$(cli KEYSPACE CREATE user MODE causal FEATURES yes HISTORY 64)" = OK ]
echo "keyspaces: models (strong: the model registry), user (causal: a feature view, history 64)"
echo

nodes=""
for i in $(seq 0 $((NODES - 1))); do nodes="$nodes${nodes:+,}127.0.0.1:$((BASE + i))"; done
status=0
/usr/bin/python3 scripts/demo.py --nodes "$nodes" --dir "$DIR" --spectra bin/spectra \
	--seconds "$SECONDS_RUN" --fleet "$FLEET" --dashboard "http://127.0.0.1:$HTTP/ (node 1)" ||
	status=$?
if [ "${DEMO_KEEP:-0}" = 1 ]; then keep=1; fi
exit "$status"
