# shellcheck shell=bash
# cluster.sh: helpers the shell tests of a local cluster share. Source it
# after setting $SPECTRA and `base` (node 1's client port; node i listens
# on base + i - 1), and after defining `fail MSG` (the test's own: it
# knows which logs to show).
#
#   port ID              node ID's client port
#   cli ID ARGS...       one command to node ID; prints the raw reply (or
#                        the connection error); never fails by itself
#   expect WANT ID ARGS...         the reply must be WANT
#   expect_prefix WANT ID ARGS...  the reply must start with WANT
#   ok MSG               prints "ok - MSG"
#   cluster_kill DIR     stops the cluster in DIR (if any) and kills -9 any
#                        node a pidfile there still names
#   node_logs DIR        the last 10 lines of each node's log in DIR, on
#                        stderr (for a test's fail)
#   cluster_test NAME    the usual set-up: a scratch directory $work (the
#                        cluster goes in $dir, $work/c), stopped and removed
#                        on exit, and a fail MSG that prints MSG and the
#                        nodes' logs and exits 1

port() { echo $(($1 + base - 1)); }

cli() {
	local id=$1
	shift
	timeout 10 redis-cli -p "$(port "$id")" "$@" 2>&1 | tr -d '\r' || true
}

expect() {
	local want=$1 id=$2 got
	shift 2
	got=$(cli "$id" "$@")
	[ "$got" = "$want" ] || fail "node $id: $*: want '$want', got '$got'"
}

expect_prefix() {
	local want=$1 id=$2 got
	shift 2
	got=$(cli "$id" "$@")
	[[ "$got" == "$want"* ]] || fail "node $id: $*: want '$want...', got '$got'"
}

ok() { echo "ok - $*"; }

cluster_kill() {
	local d=$1 p
	if [ -f "$d/cluster.conf" ]; then
		"$SPECTRA" cluster down --dir "$d" --timeout 5 >/dev/null 2>&1 || true
	fi
	for p in "$d"/node-*/spectrad.pid; do
		if [ -f "$p" ]; then kill -9 "$(cat "$p")" 2>/dev/null || true; fi
	done
}

node_logs() {
	local f
	for f in "$1"/node-*/spectrad.log; do
		[ -f "$f" ] && { echo "--- $f (last 10 lines):" >&2; tail -n 10 "$f" >&2; }
	done
	return 0
}

cluster_test() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-$1.XXXXXX")
	dir=$work/c
	trap 'cluster_kill "$dir"; rm -rf "$work"' EXIT
	fail() {
		echo "FAIL: $*" >&2
		node_logs "$dir"
		exit 1
	}
}
