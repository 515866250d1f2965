#!/usr/bin/env bash
# test_feature: the feature store on a 3-node cluster (a causal keyspace
# created as a feature view).
#
#  - KEYSPACE CREATE's feature options and their errors; FEATURE.* refused
#    outside a feature view, and plain commands inside one; FEATURE.SET,
#    GET (map, FIELDS, WITHTIMES, ASOF), MGET and HISTORY with their
#    replies and errors; a MULTI that mixes strong and feature commands.
#  - tests/lib/feature_replay.py: batches replayed out of order and again
#    (a newer event time always wins, on every node), point-in-time reads
#    and the TTL, a partition with the newest batch on the cut-off side,
#    batches atomic to readers on other nodes, and a session's writes
#    read on another node through its token.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli and python3-redis.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
cluster_test feature

base=$(free_base 3)
taken="$taken $base $((base + 1)) $((base + 2)) "
pbase=$(free_base 3)
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port 0 -- --admin-commands yes >"$work/up.out" 2>&1 ||
	{ cat "$work/up.out"; fail "cluster up"; }

# Keyspace options.
expect_prefix "ERR TTL and HISTORY are for feature views" 1 keyspace create x mode causal ttl 5
expect_prefix "ERR a feature view resolves by event time" 1 \
	keyspace create x mode causal features yes siblings yes
expect_prefix "ERR HISTORY must be 1..1024" 1 keyspace create x mode causal features yes history 0
expect_prefix "ERR TTL is in milliseconds" 1 keyspace create x mode causal features yes ttl -1
expect_prefix "ERR FEATURES takes yes or no" 1 keyspace create x mode causal features maybe
expect_prefix "ERR causal keyspaces take" 1 keyspace create x mode causal rf 3
expect OK 1 keyspace create user mode causal features yes ttl 3600000 history 4
expect OK 1 keyspace create item mode causal features yes
expect OK 1 keyspace create plain mode causal
expect OK 1 keyspace create models mode strong
got=$(cli 2 keyspace describe user | tr '\n' ' ')
[ "$got" = "name user mode causal read-level causal, feature view feature-ttl-ms 3600000 feature-history 4 " ] ||
	fail "describe user: '$got'"
got=$(cli 3 keyspace describe item | tr '\n' ' ')
[[ "$got" == *"feature-ttl-ms 0 feature-history 16 " ]] || fail "describe item: '$got'"
ok "feature views: options, defaults (TTL 0, HISTORY 16) and errors"

# Where FEATURE.* runs, and where it does not.
expect_prefix "ERR FEATURE.* commands are for feature views; 'plain' is not one" 1 \
	feature.set plain:1 10 a 1
expect_prefix "ERR FEATURE.* commands are for feature views; 'models' is not one" 1 \
	feature.get models:1
expect_prefix "ERR 'user' is a feature view: it takes FEATURE.SET" 1 set user:1 x
expect_prefix "ERR 'user' is a feature view" 1 get user:1
expect_prefix "ERR that level is not for causal keyspaces" 1 level one feature.get user:1
ok "FEATURE.* only in feature views; plain commands refused in them"

# Arguments.
expect_prefix "ERR wrong number of arguments" 1 feature.set user:1 10 a
expect_prefix "ERR FEATURE.SET key event_ms field value" 1 feature.set user:1 10 a 1 b
expect_prefix "ERR event time must be Unix milliseconds" 1 feature.set user:1 -5 a 1
expect_prefix "ERR event time must be Unix milliseconds" 1 feature.set user:1 soon a 1
expect_prefix "ERR a feature name may not be empty" 1 feature.set user:1 10 "" 1
expect_prefix "ERR ASOF takes a time" 1 feature.get user:1 asof x
expect_prefix "ERR syntax error" 1 feature.get user:1 clicks
expect_prefix "ERR syntax error" 1 feature.get user:1 fields
expect_prefix "ERR numkeys must be" 1 feature.mget 3 user:1 user:2
expect_prefix "ERR numkeys must be" 1 feature.mget 0 user:1
expect_prefix "ERR every key of FEATURE.MGET must be in a causal feature view; 'plain'" 1 \
	feature.mget 2 user:1 plain:1
expect_prefix "ERR FEATURE.HISTORY key field [COUNT n]" 1 feature.history user:1 a count
ok "malformed FEATURE.* commands get clear errors"

# Replies.
now=$(($(date +%s) * 1000))
t1=$((now - 5000)) t2=$((now - 3000))
expect 2 1 feature.set user:1 "$t2" clicks 7 country se
expect 0 1 feature.set user:1 "$t1" clicks 5 country no # late: nothing made current
expect 1 1 feature.set user:1 "$t1" age 40 age 41 # a field named twice: the last wins, counted once
got=$(cli 1 feature.get user:1 | tr '\n' ' ')
[ "$got" = "age 41 clicks 7 country se " ] || fail "feature.get: '$got'"
got=$(cli 1 feature.get user:1 withtimes fields clicks nope | tr '\n' ' ')
[ "$got" = "7 $t2  " ] || fail "withtimes fields: '$got'"
got=$(cli 1 feature.get user:1 asof "$t1" fields clicks country age | tr '\n' ' ')
[ "$got" = "5 no 41 " ] || fail "asof t1: '$got'"
got=$(cli 1 feature.get user:1 asof $((t1 - 1)) | tr '\n' ' ')
[ "$got" = " " ] || [ "$got" = "" ] || fail "asof before: '$got'"
got=$(cli 1 feature.history user:1 clicks | tr '\n' ' ')
[ "$got" = "$t2 7 $t1 5 " ] || fail "history: '$got'"
got=$(cli 1 feature.history user:1 clicks count 1 | tr '\n' ' ')
[ "$got" = "$t2 7 " ] || fail "history count 1: '$got'"
expect "" 1 feature.history user:404 clicks
expect 1 1 feature.set item:9 10 price 3
got=$(cli 1 feature.mget 3 user:1 item:9 user:404 fields clicks price | tr '\n' ' ')
[ "$got" = "7   3   " ] || fail "mget: '$got'"
# The view's TTL: a value an hour older than now reads as absent.
expect 1 1 feature.set user:2 $((now - 3600000 - 1000)) stale 1
got=$(cli 1 feature.get user:2 fields stale | tr '\n' ' ')
[ "$got" = " " ] || fail "ttl: '$got'"
got=$(cli 1 feature.get user:2 asof $((now - 3600000)) fields stale | tr '\n' ' ')
[ "$got" = "1 " ] || fail "ttl asof: '$got'"
ok "FEATURE.SET/GET/MGET/HISTORY replies: event time wins, ASOF, WITHTIMES, TTL"

# MULTI: FEATURE.SETs form one batch; mixing with strong commands is refused.
got=$(printf 'MULTI\nFEATURE.SET user:3 10 a 1\nFEATURE.SET item:3 10 b 2\nEXEC\n' |
	redis-cli -p "$(port 1)" | tr -d '\r' | tr '\n' ' ')
[ "$got" = "OK QUEUED QUEUED 1 1 " ] || fail "multi batch: '$got'"
got=$(printf 'MULTI\nFEATURE.SET user:3 10 a 1\nSET models:x 1\nEXEC\n' |
	redis-cli -p "$(port 1)" | tr -d '\r' | tr '\n' ' ')
[[ "$got" == "OK QUEUED ERR a transaction is either strong commands or FEATURE.SETs"*"EXECABORT"* ]] ||
	fail "multi mixed: '$got'"
got=$(printf 'MULTI\nFEATURE.GET user:3\nEXEC\n' | redis-cli -p "$(port 1)" | tr -d '\r' | tr '\n' ' ')
[[ "$got" == "OK ERR inside MULTI, causal feature views take FEATURE.SET only"*"EXECABORT"* ]] ||
	fail "multi get: '$got'"
# A batch is one causal update: at most 4,096 FEATURE.SETs, and 16 MB.
got=$({ printf 'MULTI\r\n'; for i in $(seq 1 4097); do printf 'FEATURE.SET user:b%d 10 a 1\r\n' "$i"; done; printf 'EXEC\r\n'; } |
	redis-cli -p "$(port 1)" | tr -d '\r' | grep -v '^QUEUED$' | tr '\n' ' ')
[[ "$got" == "OK ERR a feature batch holds at most 4096 FEATURE.SETs and 16 MB"*"EXECABORT"* ]] ||
	fail "batch of 4097: '$got'"
expect "" 2 feature.get user:b1 fields a
# Two FEATURE.SETs of 9 MB each: the second passes the batch's 16 MB.
got=$(/usr/bin/python3 - "$(port 1)" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*a):
    b = b"*%d\r\n" % len(a)
    for x in a:
        b += b"$%d\r\n%s\r\n" % (len(x), x)
    return b
big = b"x" * (9 << 20)
s.sendall(cmd(b"MULTI") + cmd(b"FEATURE.SET", b"user:bb", b"10", b"a", big) +
          cmd(b"FEATURE.SET", b"user:bb", b"10", b"b", big) + cmd(b"EXEC") +
          cmd(b"FEATURE.GET", b"user:bb"))
f = s.makefile("rb")
print(" ".join(f.readline().decode().strip() for _ in range(5)))
PY
)
[ "$got" = "+OK +QUEUED -ERR a feature batch holds at most 4096 FEATURE.SETs and 16 MB (it is one causal update) -EXECABORT Transaction discarded because of previous errors. *0" ] ||
	fail "batch of 18 MB: '$got'"
got=$(head -c $((17 << 20)) /dev/zero | redis-cli -p "$(port 1)" -x feature.set user:bc 10 a | tr -d '\r')
[ "$got" = "ERR a FEATURE.SET carries at most 16 MB of fields and values" ] || fail "17 MB SET: '$got'"
ok "MULTI/EXEC of FEATURE.SETs is one batch; mixed transactions and oversized batches refused"

# An eventual feature view: the same record, merged by the replicas.
expect OK 1 keyspace create efeat mode eventual rf 3 features yes ttl 3600000 history 2
got=$(cli 2 keyspace describe efeat | tr '\n' ' ')
[[ "$got" == *"sloppy-quorum no feature-ttl-ms 3600000 feature-history 2 " ]] ||
	fail "describe efeat: '$got'"
expect_prefix "ERR TTL and HISTORY are for feature views" 1 keyspace create y mode eventual ttl 5
expect_prefix "ERR 'efeat' is a feature view" 1 set efeat:1 x
expect_prefix "ERR feature.mget is for causal feature views" 1 feature.mget 1 efeat:1
expect_prefix "ERR every key of FEATURE.MGET must be in a causal feature view; 'efeat'" 1 \
	feature.mget 2 user:1 efeat:1
# Receipts wrap feature replies like any other.
got=$(printf 'CLIENT RECEIPTS ON\r\nFEATURE.GET user:1 FIELDS clicks\r\nFEATURE.SET user:9 5 a 1\r\n' |
	redis-cli -p "$(port 2)" | tr -d '\r' | tr '\n' ' ')
[[ "$got" == "OK 7 mode causal level causal node 2 replicas 1 lag-ms "*" 1 mode causal level causal node 2 replicas 1 lag-ms "* ]] ||
	fail "receipts: '$got'"
got=$(printf 'MULTI\nFEATURE.SET efeat:1 10 a 1\nEXEC\n' | redis-cli -p "$(port 1)" |
	tr -d '\r' | tr '\n' ' ')
[[ "$got" == "OK ERR inside MULTI, causal feature views take FEATURE.SET only"*"EXECABORT"* ]] ||
	fail "multi eventual: '$got'"
# Out of order, one write per node at ONE: the newest event time wins at ALL.
expect 1 3 level one feature.set efeat:1 $((now - 1000)) clicks 9
# (1 if the newer write had not reached that replica yet, else 0.)
for w in "1 3000 7" "2 2000 8"; do
	set -- $w
	got=$(cli "$1" level one feature.set efeat:1 $((now - $2)) clicks "$3")
	[ "$got" = 0 ] || [ "$got" = 1 ] || fail "node $1: late eventual write: '$got'"
done
for i in 1 2 3; do
	got=$(cli "$i" level all feature.get efeat:1 withtimes | tr '\n' ' ')
	[ "$got" = "clicks 9 $((now - 1000)) " ] || fail "node $i: eventual view: '$got'"
	got=$(cli "$i" level all feature.history efeat:1 clicks | tr '\n' ' ')
	[ "$got" = "$((now - 1000)) 9 $((now - 2000)) 8 " ] || fail "node $i: eventual history: '$got'"
done
expect 0 1 level quorum feature.set efeat:1 $((now - 5000)) clicks 1
expect 1 1 level quorum feature.set efeat:2 "$now" a 1 a 2
got=$(cli 3 level all feature.get efeat:2 | tr '\n' ' ')
[ "$got" = "a 2 " ] || fail "eventual field named twice: '$got'"
got=$(cli 2 level all feature.get efeat:1 asof $((now - 1500)) fields clicks | tr '\n' ' ')
[ "$got" = "8 " ] || fail "eventual asof: '$got'"
ok "eventual feature views: newest event time wins at every replica; history 2; ASOF"

/usr/bin/python3 "$root/tests/lib/feature_replay.py" "$(port 1)" "$(port 2)" "$(port 3)" user \
	"${SEED:-$RANDOM}" || fail "feature_replay"
echo "test_feature: all passed"
