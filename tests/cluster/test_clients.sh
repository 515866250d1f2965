#!/usr/bin/env bash
# test_clients: the client examples, run against a real 3-node cluster
# with a strong `models` keyspace and a causal `user` feature view.
#
#  - examples/python/model_service.py --check (redis-py from Debian)
#  - examples/node/model_service.js --check (ioredis, pinned in
#    examples/node/package-lock.json; `npm ci` first if node_modules is
#    missing)
#
# Each registers and promotes model versions on different nodes (a
# promotion race among them), writes a feature batch on one node and reads
# it on another through the session token, replays a late batch, reads
# point in time, predicts, and checks the errors; see the files' check().
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli, python3-redis, node and npm.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
cluster_test clients

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	fail "node and npm are needed for examples/node (scripts/deps.sh installs them)"
fi
if [ ! -d "$root/examples/node/node_modules/ioredis" ]; then
	(cd "$root/examples/node" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) \
		>"$work/npm.out" 2>&1 ||
		{ cat "$work/npm.out" >&2; fail "npm ci in examples/node failed (is the npm registry reachable?)"; }
fi

base=$(free_base 3)
taken="$taken $base $((base + 1)) $((base + 2)) "
pbase=$(free_base 3)
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port 0 >"$work/up.out" 2>&1 ||
	{ cat "$work/up.out"; fail "cluster up"; }
expect OK 1 keyspace create models mode strong
expect OK 2 keyspace create user mode causal features yes
addrs="127.0.0.1:$(port 1),127.0.0.1:$(port 2),127.0.0.1:$(port 3)"

timeout 60 /usr/bin/python3 "$root/examples/python/model_service.py" --check "$addrs" ||
	fail "examples/python/model_service.py --check"
ok "the Python example (redis-py) against 3 nodes"
timeout 60 node "$root/examples/node/model_service.js" --check "$addrs" ||
	fail "examples/node/model_service.js --check"
ok "the Node.js example (ioredis) against 3 nodes"
echo "test_clients: all passed"
