#!/usr/bin/env bash
# test_redis_tools: the stock Redis tools against one spectrad.
#
# redis-cli (one-shot commands, --scan, -3 for RESP3, -x, -r, --pipe mass
# insert) and redis-benchmark (-t set,get,incr,mset, with and without
# pipelining, random keys, 1000-byte values) must work against spectrad
# unchanged, with no errors, and leave exactly the data they wrote.
#
# Environment: SPECTRAD (absolute path of spectrad, default bin/spectrad),
# SPECTRA (the spectra CLI; unused here). SPECTRA_TEST_AGAINST=redis runs
# the same checks against redis-server, to validate the expectations.
# Only 127.0.0.1 is used. The node is started here on a free port with a
# temporary directory and a pidfile, and killed by the EXIT trap.
set -euo pipefail
cd "$(dirname "$0")/../.."

SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
AGAINST=${SPECTRA_TEST_AGAINST:-spectrad}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-tools-XXXXXX")
PORT=
NODE_PID=
FAILED=0

cleanup() {
	local rc=$?
	if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
		kill -KILL "$NODE_PID" 2>/dev/null || true
		wait "$NODE_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
		echo "---- last 40 lines of the node log ($AGAINST, port ${PORT:-?}) ----"
		tail -n 40 "$TMP/node.log" 2>/dev/null || true
		echo "---- end of log ----"
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL - line $LINENO: command failed: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

fail() {
	FAILED=1
	echo "FAIL - $*"
	exit 1
}
ok() { echo "ok - $*"; }

# expect_eq DESCRIPTION WANT GOT
expect_eq() {
	if [ "$2" != "$3" ]; then
		fail "$1: expected '$2', got '$3'"
	fi
	ok "$1"
}

# Start the node on a random free-looking port; retry if the port is taken.
start_node() {
	local attempt
	for attempt in 1 2 3 4 5; do
		PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if redis-cli -h 127.0.0.1 -p "$PORT" PING >/dev/null 2>&1; then
			continue
		fi
		rm -rf "$TMP/data" "$TMP/node.pid"
		mkdir -p "$TMP/data"
		if [ "$AGAINST" = redis ]; then
			redis-server --bind 127.0.0.1 --port "$PORT" --dir "$TMP/data" \
				--pidfile "$TMP/node.pid" --save '' --appendonly no \
				--databases 1 >"$TMP/node.log" 2>&1 &
		else
			"$SPECTRAD" --bind 127.0.0.1 --port "$PORT" --dir "$TMP/data" \
				--pidfile "$TMP/node.pid" >"$TMP/node.log" 2>&1 &
		fi
		NODE_PID=$!
		local i
		for i in $(seq 1 400); do
			if ! kill -0 "$NODE_PID" 2>/dev/null; then
				break
			fi
			if [ "$(redis-cli -h 127.0.0.1 -p "$PORT" PING 2>/dev/null)" = PONG ] &&
				[ "$(cat "$TMP/node.pid" 2>/dev/null)" = "$NODE_PID" ]; then
				ok "node ($AGAINST) listening on 127.0.0.1:$PORT, pidfile written"
				return 0
			fi
			sleep 0.05
		done
		if kill -0 "$NODE_PID" 2>/dev/null; then
			fail "node did not answer PING within 20 s"
		fi
		wait "$NODE_PID" 2>/dev/null || true
		NODE_PID=
		grep -qi "in use" "$TMP/node.log" || fail "node exited during start-up"
	done
	fail "no free port after 5 attempts"
}

cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

# bench ARGS...: run redis-benchmark; it must exit 0 and print no error.
# (redis-benchmark 7 ignores -e and exits at the first error reply.)
bench() {
	local out
	if ! out=$(redis-benchmark -h 127.0.0.1 -p "$PORT" "$@" 2>&1); then
		echo "$out" | tr '\r' '\n' | tail -n 20
		fail "redis-benchmark $* exited non-zero"
	fi
	out=$(echo "$out" | tr '\r' '\n' | grep -v '^WARNING: -e option' || true)
	if echo "$out" | grep -qi 'error'; then
		echo "$out" | grep -i error | head -n 5
		fail "redis-benchmark $* reported errors"
	fi
	echo "$out" | grep 'requests per second' | sed 's/^ */    /'
	BENCH_OUT=$out
}

# bench_has NAME: the last bench printed a result line for test NAME.
bench_has() {
	echo "$BENCH_OUT" | grep -q "^ *$1: [0-9.]* requests per second" ||
		fail "redis-benchmark printed no result for $1"
}

start_node

# ---- redis-cli, one command at a time ----
expect_eq "PING" PONG "$(cli PING)"
expect_eq "SET" OK "$(cli SET foo bar)"
expect_eq "GET" bar "$(cli GET foo)"
expect_eq "GET of a missing key (nil)" "(nil)" "$(cli --no-raw GET nokey)"
expect_eq "INCR" 1 "$(cli INCR n)"
expect_eq "INCR again" 2 "$(cli INCR n)"
expect_eq "INCRBY" 12 "$(cli INCRBY n 10)"
expect_eq "SET with a space in the key" OK "$(cli SET 'key with space' 'v v')"
expect_eq "GET with a space in the key" "v v" "$(cli GET 'key with space')"
expect_eq "error text" "ERR value is not an integer or out of range" "$(cli INCR foo 2>&1)"
cli -r 5 INCR repeated >/dev/null
expect_eq "-r 5 INCR" 5 "$(cli GET repeated)"
head -c 60000 /dev/urandom | base64 -w 0 >"$TMP/blob"
cli -x SET blob <"$TMP/blob" >/dev/null
expect_eq "-x SET of an 80 KB value, GET back" "$(cat "$TMP/blob")" "$(cli GET blob)"
expect_eq "STRLEN" "$(wc -c <"$TMP/blob" | tr -d ' ')" "$(cli STRLEN blob)"
expect_eq "EXPIRE" 1 "$(cli EXPIRE foo 100)"
ttl=$(cli TTL foo)
[ "$ttl" -ge 99 ] && [ "$ttl" -le 100 ] || fail "TTL: expected 99..100, got $ttl"
ok "TTL"

# --scan with a pattern over MSET keys
args=()
for i in $(seq 1 50); do args+=("user:$i" "u$i"); done
for i in $(seq 1 10); do args+=("other:$i" "o$i"); done
expect_eq "MSET of 60 keys" OK "$(cli MSET "${args[@]}")"
expect_eq "--scan --pattern user:* (count)" 50 "$(cli --scan --pattern 'user:*' | wc -l | tr -d ' ')"
expect_eq "--scan --pattern user:* (distinct)" 50 "$(cli --scan --pattern 'user:*' | sort -u | wc -l | tr -d ' ')"
expect_eq "--scan --pattern user:* (the right keys)" "$(seq 1 50 | sed 's/^/user:/' | sort)" \
	"$(cli --scan --pattern 'user:*' | sort)"
expect_eq "--scan (all keys, distinct)" 65 "$(cli --scan | sort -u | wc -l | tr -d ' ')"
expect_eq "DBSIZE" 65 "$(cli DBSIZE)"

# RESP3 through redis-cli -3
hello=$(cli -3 HELLO 3)
echo "$hello" | grep -q '^proto 3$' || fail "redis-cli -3 HELLO 3: no 'proto 3' in: $hello"
ok "redis-cli -3 HELLO 3"
expect_eq "redis-cli -3 GET missing (RESP3 null)" "(nil)" "$(cli -3 --no-raw GET nokey)"
expect_eq "redis-cli -3 GET" bar "$(cli -3 GET foo)"
expect_eq "redis-cli -3 CONFIG GET port (map)" "1# \"port\" => \"$PORT\"" "$(cli -3 --no-raw CONFIG GET port)"
expect_eq "redis-cli -3 DBSIZE" 65 "$(cli -3 DBSIZE)"

# INFO, DBSIZE, CONFIG GET
info=$(cli INFO)
for section in Server Clients Stats Persistence Keyspace; do
	echo "$info" | grep -q "^# $section" || fail "INFO lacks # $section"
done
ok "INFO has the server, clients, stats, persistence and keyspace sections"
cli INFO keyspace | grep -q '^db0:keys=65,expires=1,' || fail "INFO keyspace: $(cli INFO keyspace)"
ok "INFO keyspace counts keys and expires"
expect_eq "CONFIG GET port" "$(printf 'port\n%s' "$PORT")" "$(cli CONFIG GET port)"
expect_eq "CONFIG GET save (asked by redis-benchmark)" save "$(cli CONFIG GET save | head -n 1)"
expect_eq "CONFIG GET appendonly (asked by redis-benchmark)" appendonly \
	"$(cli CONFIG GET appendonly | head -n 1)"

# ---- redis-cli --pipe: mass insert ----
expect_eq "FLUSHALL" OK "$(cli FLUSHALL)"
awk 'BEGIN { for (i = 0; i < 10000; i++) { k = "mass:" i; v = "value-" i;
	printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' \
	>"$TMP/mass.resp"
pipe_out=$(cli --pipe <"$TMP/mass.resp" 2>&1)
echo "$pipe_out" | grep -q 'errors: 0, replies: 10000' || fail "--pipe: $pipe_out"
ok "--pipe of 10000 SETs: errors: 0, replies: 10000"
expect_eq "DBSIZE after --pipe" 10000 "$(cli DBSIZE)"
expect_eq "GET mass:0" value-0 "$(cli GET mass:0)"
expect_eq "GET mass:9999" value-9999 "$(cli GET mass:9999)"
expect_eq "--scan after --pipe" 10000 "$(cli --scan --pattern 'mass:*' | sort -u | wc -l | tr -d ' ')"

# ---- redis-benchmark ----
expect_eq "FLUSHALL" OK "$(cli FLUSHALL)"
for p in 1 16; do
	echo "redis-benchmark -t set,get,incr,mset -n 20000 -c 20 -P $p"
	bench -q -t set,get,incr,mset -n 20000 -c 20 -P "$p"
	for t in SET GET INCR 'MSET (10 keys)'; do bench_has "$t"; done
	ok "redis-benchmark -P $p: SET GET INCR MSET, no errors"
done
# Without -r the keys are literally key:__rand_int__ and counter:__rand_int__,
# so the counter must hold exactly the 2 x 20000 increments.
expect_eq "DBSIZE after the benchmark" 2 "$(cli DBSIZE)"
expect_eq "every INCR counted" 40000 "$(cli GET counter:__rand_int__)"
expect_eq "the benchmark's value" VXK "$(cli GET key:__rand_int__)"

expect_eq "FLUSHALL" OK "$(cli FLUSHALL)"
echo "redis-benchmark -t set,get -n 20000 -c 20 -d 1000 -r 10000 (-P 1 and -P 8)"
bench -q -t set,get -n 20000 -c 20 -d 1000 -r 10000
bench_has SET
bench_has GET
bench -q -t set,get -n 20000 -c 20 -d 1000 -r 10000 -P 8
bench_has SET
keys=$(cli DBSIZE)
# 40000 draws from 10000 keys leave all but ~0.2 of them written
[ "$keys" -ge 9000 ] && [ "$keys" -le 10000 ] ||
	fail "DBSIZE after random-key benchmark: expected 9000..10000, got $keys"
ok "DBSIZE after random-key benchmark: $keys of 10000"
cli --scan --pattern 'key:*' >"$TMP/keys"
key=$(head -n 1 "$TMP/keys")
expect_eq "a random key's value is 1000 bytes" 1000 "$(cli STRLEN "$key")"
expect_eq "random keys are key:<12 digits>" 1 "$(echo "$key" | grep -c '^key:[0-9]\{12\}$')"

# ---- clean shutdown ----
kill -TERM "$NODE_PID"
rc=0
wait "$NODE_PID" || rc=$?
NODE_PID=
expect_eq "SIGTERM exits 0" 0 "$rc"
echo "all redis-tools checks passed ($AGAINST)"
