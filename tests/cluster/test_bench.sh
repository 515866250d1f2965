#!/usr/bin/env bash
# test_bench: `spectra bench` end to end, against real servers.
#
#  1. usage errors exit 2 with a message (bad driver, bad etcd template,
#     --fault-at without --fault, --timeout 0);
#  2. RESP, closed loop: --requests N records exactly N ops, and a seq
#     write pass leaves exactly the keys it named (DBSIZE);
#  3. open loop without coordinated omission: at 1,000 ops/s against a
#     redis-server that is stopped (SIGSTOP) for 400 ms mid-run, the p99
#     counts from each op's scheduled start, so it shows the stall
#     (>= 300 ms); the same run's ops/s stays near the rate;
#  4. 10,000 connections to one redis-server (maxclients raised): all come
#     up, none drops and every op succeeds (the tool raises its descriptor
#     limit);
#  5. the etcd driver against a 3-member etcd: a seq PUT pass writes
#     exactly its keys (etcdctl counts them), linearizable and serializable
#     GETs succeed, a too-large value comes back as errors named by their
#     gRPC code, not as a dropped connection;
#  6. availability: 3-node spectra cluster, strong writes at 3,000 ops/s
#     (open loop) over 60 connections with --timeout 1000 --failover, the
#     leader killed -9 2 s in: the fault ran, some ops failed, most succeeded, the longest gap
#     without a success lies between 50 ms and 6 s and starts near the
#     kill, and ops succeeded after it (the run recovered).
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-server, redis-cli, etcd, etcdctl and /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-bench.XXXXXX")
dir=$TMP/c

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
# shellcheck source=bench/lib/systems.sh
source "$root/bench/lib/systems.sh"

cleanup() {
	cluster_kill "$dir"
	sys_stop_all
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$TMP"/*.out "$TMP"/*.err; do
		[ -s "$f" ] || continue
		echo "---- ${f#"$TMP"/} ----" >&2
		tail -n 15 "$f" >&2
	done
	[ -d "$dir" ] && node_logs "$dir"
	exit 1
}

# field FILE NAME: a field of the last JSON line of FILE.
field() {
	tail -n 1 "$1" | /usr/bin/python3 -c "
import json, sys
v = json.loads(sys.stdin.read())[sys.argv[1]]
print(sum(v.values()) if isinstance(v, dict) else v)" "$2"
}

sb() { timeout --kill-after=5 120 "$SPECTRA" bench "$@"; }

# ---- 1. usage ----------------------------------------------------------------

usage() { # WANT_TEXT ARGS...
	local want=$1 rc=0
	shift
	sb "$@" >"$TMP/usage.out" 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || fail "spectra bench $*: exit $rc, want 2"
	grep -q -- "$want" "$TMP/usage.out" || fail "spectra bench $*: no '$want' in: $(cat "$TMP/usage.out")"
}
usage "is not resp or etcd" --driver bogus
usage "PUT" --driver etcd --op '1:PUT onlykey'
usage "needs --fault" --fault-at 3
usage "timeout" --timeout 0
ok "usage errors exit 2 and say why"

# ---- 2-4. RESP against redis-server --------------------------------------------

rport=$(free_base 1)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --maxclients 12000 \
	>"$TMP/redis.out" 2>&1 &
rpid=$!
SYS_PIDS+=("$rpid")
sys_wait_port "$rport" "$rpid" || fail "redis-server did not start"

sb --hosts "127.0.0.1:$rport" --clients 20 --requests 3000 --warmup 0 --dist seq --keys 3000 \
	--op '1:SET k:{key} {value}' --json "$TMP/seq.json" --quiet >"$TMP/seq.out" 2>"$TMP/seq.err" ||
	fail "seq write pass"
[ "$(field "$TMP/seq.json" ok)" = 3000 ] || fail "seq pass recorded $(field "$TMP/seq.json" ok) ops, want 3000"
[ "$(redis-cli -p "$rport" DBSIZE)" = 3000 ] || fail "DBSIZE $(redis-cli -p "$rport" DBSIZE) after 3000 seq writes"
ok "closed loop: --requests 3000 records 3000 ops and writes 3000 distinct keys"

# Open loop through a stall: the server is stopped for 400 ms, 1.5 s in.
(sleep 1.5 && kill -STOP "$rpid" && sleep 0.4 && kill -CONT "$rpid") &
stall=$!
sb --hosts "127.0.0.1:$rport" --clients 50 --rate 1000 --duration 3 --warmup 0.5 \
	--op '1:GET k:{key}' --keys 3000 --json "$TMP/open.json" --quiet >"$TMP/open.out" 2>"$TMP/open.err" ||
	fail "open loop run"
wait "$stall" || true
kill -CONT "$rpid" 2>/dev/null || true
p99=$(field "$TMP/open.json" p99_us)
rate=$(field "$TMP/open.json" ops_per_s)
[ "$p99" -ge 300000 ] || fail "open loop p99 $p99 us through a 400 ms stall: the stall is hidden"
/usr/bin/python3 -c "import sys; sys.exit(0 if 900 <= $rate <= 1100 else 1)" ||
	fail "open loop at 1000 ops/s measured $rate ops/s"
ok "open loop: a 400 ms stall shows in p99 ($((p99 / 1000)) ms) at $rate ops/s"

sb --hosts "127.0.0.1:$rport" --clients 10000 --duration 2 --warmup 1 --op '1:GET k:{key}' \
	--keys 3000 --json "$TMP/10k.json" --quiet >"$TMP/10k.out" 2>"$TMP/10k.err" || fail "10,000 clients"
[ "$(field "$TMP/10k.json" connects)" = 10000 ] ||
	fail "10,000 clients: $(field "$TMP/10k.json" connects) connections came up"
[ "$(field "$TMP/10k.json" errors)" = 0 ] || fail "10,000 clients: errors $(tail -n 1 "$TMP/10k.json")"
[ "$(field "$TMP/10k.json" drops)" = 0 ] || fail "10,000 clients: connections dropped"
[ "$(field "$TMP/10k.json" ok)" -ge 10000 ] || fail "10,000 clients: only $(field "$TMP/10k.json" ok) ops"
ok "10,000 connections: all up, $(field "$TMP/10k.json" ok) ops ok, none failed"

# ---- 5. etcd -----------------------------------------------------------------------

sys_etcd 3
sb --driver etcd --hosts "$ETCD_HOSTS" --clients 20 --requests 500 --warmup 0 --dist seq --keys 500 \
	--op '1:PUT e:{key} {value}' --json "$TMP/etcd-put.json" --quiet \
	>"$TMP/etcd-put.out" 2>"$TMP/etcd-put.err" || fail "etcd PUT pass"
[ "$(field "$TMP/etcd-put.json" ok)" = 500 ] || fail "etcd PUT pass: $(field "$TMP/etcd-put.json" ok) ok"
n=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" get e: --prefix --keys-only | grep -c '^e:')
[ "$n" = 500 ] || fail "etcd holds $n keys under e:, want 500"
v=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" get e:7 --print-value-only)
[ "$v" = "$(printf 'x%.0s' $(seq 1 64))" ] || [ "${#v}" = 64 ] || fail "etcd e:7 = '$v', want a 64-byte value"
for tmpl in 'GET e:{key}' 'GET e:{key} SERIALIZABLE'; do
	sb --driver etcd --hosts "$ETCD_HOSTS" --clients 20 --duration 1 --warmup 0.2 --keys 500 \
		--op "1:$tmpl" --json "$TMP/etcd-get.json" --quiet >"$TMP/etcd-get.out" 2>"$TMP/etcd-get.err" ||
		fail "etcd $tmpl"
	[ "$(field "$TMP/etcd-get.json" errors)" = 0 ] || fail "etcd $tmpl: errors $(tail -n 1 "$TMP/etcd-get.json")"
	[ "$(field "$TMP/etcd-get.json" ok)" -ge 100 ] || fail "etcd $tmpl: too few ops"
done
sb --driver etcd --hosts "$ETCD_HOSTS" --clients 2 --requests 4 --warmup 0 --value-size 2000000 \
	--op '1:PUT big:{key} {value}' --json "$TMP/etcd-big.json" --quiet \
	>"$TMP/etcd-big.out" 2>"$TMP/etcd-big.err" || true
errs=$(tail -n 1 "$TMP/etcd-big.json" | /usr/bin/python3 -c 'import json, sys; print(" ".join(sorted(json.loads(sys.stdin.read())["errors"])))')
[ -n "$errs" ] && [[ "$errs" != *conn_dropped* ]] && [[ "$errs" != *HTTP_* ]] ||
	fail "etcd: a 2 MB value gave errors '$errs', want gRPC code names"
ok "etcd driver: 500 PUTs land, GETs (linearizable, serializable) succeed, errors named '$errs'"
sys_stop_all

# ---- 6. availability through a leader kill ------------------------------------------

base=$(free_base 3)
pbase=$(free_base 3)
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port 0 >"$TMP/up.out" 2>&1 || fail "cluster up"
leader=$("$SPECTRA" cluster status --dir "$dir" --json |
	/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["leader"])')
hosts=127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))
sb --hosts "$hosts" --clients 60 --rate 3000 --duration 10 --warmup 0.5 --timeout 1000 --failover \
	--fault "'$SPECTRA' cluster stop --dir '$dir' --id $leader --kill" --fault-at 2 \
	--op '1:SET a:{key} {value}' --json "$TMP/avail.json" >"$TMP/avail.out" 2>"$TMP/avail.err" ||
	fail "availability run"
grep -q "^fault ran at" "$TMP/avail.out" || fail "the fault did not run: $(tail -n 3 "$TMP/avail.out")"
grep -q "^availability: " "$TMP/avail.out" || fail "no availability line"
tail -n 1 "$TMP/avail.json" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
errs = sum(r["errors"].values())
ok, gap, at, t = r["ok"], r["max_gap_ms"], r["max_gap_at_s"], r["fault_ran_at_s"]
print("ok %d failed %d availability %.4f gap %.0f ms at %.2f s (fault at %.2f s, exit %s)" % (
    ok, errs, r["availability"], gap, at, t, r["fault_status"]))
assert r["fault_status"] == 0, "the kill failed"
# Requests held through the election succeed late rather than fail, so
# a run may see no failure at all; the gap shows the outage.
assert 0.5 < r["availability"] <= 1, "availability out of range"
assert 50 <= gap <= 6000, "gap out of range"
assert t - 1.0 <= at <= t + 1.5, "the longest gap is not at the kill"
assert at + gap / 1000 < r["seconds"] - 0.5, "no op succeeded after the gap"
' >"$TMP/avail.check" 2>&1 || fail "availability: $(cat "$TMP/avail.check")"
ok "availability through a leader kill: $(cat "$TMP/avail.check")"
echo "all bench tests passed"
