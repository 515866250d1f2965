#!/usr/bin/env bash
# test_receipts: staleness receipts and bounded-staleness reads, end to end
# on a 3-node cluster with a causal and an eventual keyspace.
#
#  1. CLIENT RECEIPTS: off by default, ON/OFF, bad arguments refused;
#  2. RESP2 receipts: [reply, receipt] for strong (stale, linearizable),
#     eventual (quorum: 2 replicas, the value's HLC and writer, matching
#     LWW.GET) and causal reads (origin and seq) and writes; errors carry
#     none; with receipts off, replies are plain again;
#  3. RESP3 receipts: an attribute (|) before the reply, parsed by a raw
#     socket client (redis-cli 7.0 cannot read attributes);
#  4. MAXSTALE: with 400 ms injected between the leader and a follower,
#     the follower's receipts show a lag over 400 ms; MAXSTALE 200 GET of
#     a strong key is answered by the leader (level linearizable), MAXSTALE
#     5000 locally (level stale, lag within the bound); a causal
#     MAXSTALE 200 GET is refused with TRYAGAIN naming the lag; an eventual
#     one is refused; without the delay, the follower serves MAXSTALE 1000
#     itself again;
#  5. regression: a causal GET that had to wait for its session (a token
#     from a node ahead) is answered with a bulk string, not an array (the
#     waiting path once ran with its arguments swapped).
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli and /usr/bin/python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"
cluster_test receipts

base=$(free_base 3)
taken="$taken $base $((base + 1)) $((base + 2)) "
pbase=$(free_base 3)
taken="$taken $pbase $((pbase + 1)) $((pbase + 2)) "
hbase=$(free_base 3)
"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port "$hbase" -- --admin-commands yes >"$work/up.out" 2>&1 ||
	{ cat "$work/up.out"; fail "cluster up"; }
expect OK 1 keyspace create cz mode causal
expect OK 1 keyspace create ev mode eventual rf 3
for i in 1 2 3; do
	for _ in $(seq 1 50); do
		[ "$(cli "$i" keyspace describe ev | sed -n 4p)" = eventual ] && break
		sleep 0.1
	done
done
leader=$(cli 1 cluster info | sed -n 's/^leader_id://p')
[ -n "$leader" ] && [ "$leader" != 0 ] || fail "no leader"
follower=$((leader % 3 + 1))

# rcli ID CMDS: runs the newline-separated commands on one connection with
# receipts on (RESP2), printing the replies one element per line.
rcli() {
	printf 'CLIENT RECEIPTS ON\n%s\n' "$2" | timeout 10 redis-cli -p "$(port "$1")" 2>&1 |
		tr -d '\r' | tail -n +2
}

# field NAME: the value after the line NAME in stdin (first match).
field() { awk -v k="$1" 'f { print; exit } $0 == k { f = 1 }'; }

# 1. the switch
expect off 1 client receipts
expect_prefix "ERR usage: CLIENT RECEIPTS" 1 client receipts maybe
expect_prefix "ERR usage: CLIENT RECEIPTS" 1 client receipts on now
ok "CLIENT RECEIPTS: off by default; bad arguments refused"

# 2. RESP2
expect OK 1 set s:a alpha
rev=$(cli "$leader" getrev s:a | sed -n 2p)
out=$(rcli "$leader" "GET s:a")
[ "$(sed -n 1p <<<"$out")" = alpha ] || fail "receipt: the reply is not first: $out"
[ "$(field mode <<<"$out")" = strong ] || fail "strong receipt mode: $out"
[ "$(field level <<<"$out")" = linearizable ] || fail "strong receipt level: $out"
[ "$(field node <<<"$out")" = "$leader" ] || fail "strong receipt node: $out"
[ "$(field replicas <<<"$out")" = 2 ] || fail "a linearizable read rests on 2 of 3: $out"
idx=$(field index <<<"$out")
[ "$idx" -ge "$rev" ] || fail "receipt index $idx is before the key's revision $rev"
out=$(rcli "$follower" "LEVEL stale GET s:a")
[ "$(field level <<<"$out")" = stale ] && [ "$(field node <<<"$out")" = "$follower" ] ||
	fail "stale receipt: $out"
[ "$(field replicas <<<"$out")" = 1 ] || fail "a stale read rests on one node: $out"
[[ "$(field lag-ms <<<"$out")" =~ ^[0-9]+$ ]] || fail "a follower knows its lag: $out"
ok "RESP2 strong receipts: level, node, replicas, Raft index, lag"

expect OK 2 set ev:a beta
lww=$(cli 3 lww.get ev:a | tr '\n' ' ')
out=$(rcli 3 "LEVEL quorum GET ev:a")
[ "$(sed -n 1p <<<"$out")" = beta ] || fail "eventual reply: $out"
[ "$(field level <<<"$out")" = quorum ] && [ "$(field replicas <<<"$out")" -ge 2 ] ||
	fail "eventual quorum receipt: $out"
[ "$(field hlc <<<"$out") $(field writer <<<"$out")" = "$(cut -d' ' -f2,3 <<<"$lww")" ] ||
	fail "eventual receipt version $(field hlc <<<"$out") vs LWW.GET $lww"
[ -z "$(field lag-ms <<<"$out")" ] || fail "an eventual replica cannot know its lag: $out"
out=$(rcli 3 "LEVEL all SET ev:b x")
[ "$(sed -n 1p <<<"$out")" = OK ] && [ "$(field replicas <<<"$out")" = 3 ] &&
	[ "$(field writer <<<"$out")" = 3 ] || fail "eventual write receipt: $out"
ok "RESP2 eventual receipts: replicas that answered, the value's HLC and writer"

out=$(rcli 2 "SET cz:a gamma")
[ "$(field mode <<<"$out")" = causal ] && [ "$(field origin <<<"$out")" = 2 ] ||
	fail "causal write receipt: $out"
seq=$(field seq <<<"$out")
out=$(rcli 2 "GET cz:a")
[ "$(sed -n 1p <<<"$out")" = gamma ] && [ "$(field seq <<<"$out")" = "$seq" ] &&
	[ "$(field level <<<"$out")" = causal ] || fail "causal read receipt: $out"
out=$(rcli 2 "GET s:a s:b")
[[ "$out" == ERR* ]] || fail "an error carries no receipt: $out"
out=$(printf 'CLIENT RECEIPTS ON\nCLIENT RECEIPTS OFF\nGET cz:a\n' | redis-cli -p "$(port 2)" |
	tr -d '\r' | tail -n 1)
[ "$out" = gamma ] || fail "receipts off: $out"
ok "RESP2 causal receipts (origin, seq); none on errors; OFF restores plain replies"

# 3. RESP3: an attribute before the reply
/usr/bin/python3 - "$(port "$follower")" <<'EOF' || fail "RESP3 receipts"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
buf = b""
def line():
    global buf
    while b"\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed")
        buf += d
    i = buf.index(b"\r\n"); l = buf[:i]; buf = buf[i + 2:]; return l
def read():
    global buf
    l = line(); t, r = l[:1], l[1:]
    if t in b"+-:": return (t, r.decode())
    if t == b"_": return None
    if t == b"$":
        n = int(r)
        while len(buf) < n + 2:
            buf += s.recv(65536)
        v = buf[:n]; buf = buf[n + 2:]; return v.decode()
    if t in b"*~": return [read() for _ in range(int(r))]
    if t == b"%": return {str(read()): read() for _ in range(int(r))}
    if t == b"|": return ("attr", {read()[1]: read() for _ in range(int(r))})
    raise SystemExit("unexpected %r" % l)
def cmd(*a):
    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in (y.encode() for y in a)))
cmd("HELLO", "3"); read()
cmd("CLIENT", "RECEIPTS", "ON"); assert read() == (b"+", "OK")
cmd("LEVEL", "stale", "GET", "s:a")
a = read(); v = read()
assert a[0] == "attr" and v == "alpha", (a, v)
r = a[1]
assert r["mode"][1] == "strong" and r["level"][1] == "stale", r
assert int(r["replicas"][1]) == 1 and int(r["index"][1]) > 0, r
cmd("GET", "ev:a"); a = read(); v = read()
assert a[0] == "attr" and a[1]["level"][1] == "quorum" and a[1]["lag-ms"] is None and v == "beta", (a, v)
cmd("GET", "nokey:1", "nokey:2"); e = read()
assert e[0] == b"-", e
print("resp3 ok")
EOF
ok "RESP3 receipts: an attribute before the reply; errors plain"

# 4. MAXSTALE under an injected delay leader -> follower
expect OK "$leader" debug net faults 0 0 0 400 0 to "$follower"
sleep 1.5
out=$(rcli "$follower" "LEVEL stale GET s:a")
lag=$(field lag-ms <<<"$out")
[ "$lag" -ge 400 ] || fail "with 400 ms of delay the follower's lag is $lag: $out"
out=$(rcli "$follower" "MAXSTALE 200 GET s:a")
[ "$(sed -n 1p <<<"$out")" = alpha ] && [ "$(field level <<<"$out")" = linearizable ] &&
	[ "$(field node <<<"$out")" = "$leader" ] || fail "MAXSTALE 200 over the lag: $out"
out=$(rcli "$follower" "MAXSTALE 5000 GET s:a")
[ "$(field level <<<"$out")" = stale ] && [ "$(field node <<<"$out")" = "$follower" ] ||
	fail "MAXSTALE 5000 within the lag: $out"
[ "$(field lag-ms <<<"$out")" -le 5000 ] || fail "served over its bound: $out"
got=$(cli "$follower" maxstale 200 get cz:a)
[[ "$got" == "TRYAGAIN this node trails its peers by "* ]] || fail "causal MAXSTALE 200: $got"
expect_prefix "ERR MAXSTALE needs a node that knows its lag" "$follower" maxstale 200 get ev:a
expect_prefix "ERR maxstale is a number of milliseconds" "$follower" maxstale -1 get s:a
expect_prefix "ERR MAXSTALE cannot be nested" "$follower" maxstale 9 level stale get s:a
ok "MAXSTALE: forwarded (strong) or refused (causal) over the bound, local within it"

# 5. a causal read that waits for its session is a plain value
expect OK 1 set cz:w one
token=$(printf 'SET cz:w two\nSESSION TOKEN\n' | redis-cli -p "$(port "$leader")" | tr -d '\r' | tail -n 1)
got=$(printf 'SESSION RESUME %s\nGET cz:w\n' "$token" | timeout 10 redis-cli -p "$(port "$follower")" |
	tr -d '\r' | tail -n 1)
[ "$got" = two ] || fail "a waiting causal GET answered '$got'"
ok "a causal GET that waited for its session answers the value (regression)"

expect OK "$leader" debug net faults 0 0 0 0 0 to "$follower"
for _ in $(seq 1 50); do
	out=$(rcli "$follower" "MAXSTALE 1000 GET s:a")
	[ "$(field node <<<"$out")" = "$follower" ] && break
	sleep 0.1
done
[ "$(field level <<<"$out")" = stale ] || fail "without the delay MAXSTALE 1000: $out"
ok "MAXSTALE 1000 is served by the follower again once the delay is gone"

echo "test_receipts: ok"
