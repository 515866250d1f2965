#!/usr/bin/env bash
# test_disk_full: spectrad on a disk that fills up must never lose a write it
# acknowledged.
#
# A 24 MB tmpfs holds the data directory; spectrad runs there with
# --map-size 64mb (larger than the disk, so the disk fills first) and
# --fsync always (every +OK means durable). One client writes 4 KB values,
# one SET at a time over a plain socket, recording each acknowledged key,
# until a write fails. Then:
#   - the node either stopped (exited, not hung) saying the disk is
#     probably full, or it is still up and the failed write got a clear
#     -ERR reply; anything else (a silent exit, a hang, a dropped
#     connection) fails the test;
#   - the tmpfs is remounted at 200 MB, spectrad restarted on the same
#     directory, and every acknowledged key must be there with its value.
#
# Needs root to mount the tmpfs; prints "skip: ..." and exits 0 otherwise.
# Environment: SPECTRAD (absolute path of spectrad, default bin/spectrad).
# Only 127.0.0.1 is used. The EXIT trap kills the node, unmounts the tmpfs
# and removes the temporary directory. Runs in well under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."

SPECTRAD=${SPECTRAD:-$PWD/bin/spectrad}
if [ "$(id -u)" -ne 0 ]; then
	echo "skip: needs root to mount a tmpfs"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spectra-diskfull-XXXXXX")
MNT=$TMP/mnt
mkdir "$MNT"
if ! mount -t tmpfs -o size=24m,mode=0700 tmpfs "$MNT" 2>/dev/null; then
	rm -rf "$TMP"
	echo "skip: needs root to mount a tmpfs"
	exit 0
fi
PORT=
NODE_PID=
FAILED=0

cleanup() {
	local rc=$?
	{ exec 3>&-; } 2>/dev/null || true
	if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
		kill -KILL "$NODE_PID" 2>/dev/null || true
		wait "$NODE_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
		echo "---- last 30 lines of the node's log and stderr (port ${PORT:-?}) ----"
		tail -n 30 "$TMP/node.log" 2>/dev/null || true
		tail -n 30 "$TMP/node.stderr" 2>/dev/null || true
		echo "---- end of log ----"
	fi
	umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
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

# start_node: spectrad on the tmpfs, on a free port in 20000..29999 (kept
# across restarts once found); the log and stderr stay off the tmpfs.
start_node() {
	local attempt i
	for attempt in 1 2 3 4 5; do
		if [ -z "$PORT" ] || [ "$attempt" -gt 1 ]; then
			PORT=$((20000 + RANDOM % 10000))
		fi
		if redis-cli -h 127.0.0.1 -p "$PORT" PING >/dev/null 2>&1; then
			continue
		fi
		"$SPECTRAD" --bind 127.0.0.1 --port "$PORT" --dir "$MNT/data" \
			--map-size 64mb --fsync always --logfile "$TMP/node.log" \
			>>"$TMP/node.stderr" 2>&1 &
		NODE_PID=$!
		for i in $(seq 1 400); do
			kill -0 "$NODE_PID" 2>/dev/null || break
			if [ "$(redis-cli -h 127.0.0.1 -p "$PORT" PING 2>/dev/null)" = PONG ]; then
				return 0
			fi
			sleep 0.05
		done
		if kill -0 "$NODE_PID" 2>/dev/null; then
			fail "node did not answer PING within 20 s"
		fi
		wait "$NODE_PID" 2>/dev/null || true
		NODE_PID=
		grep -qi "in use" "$TMP/node.log" "$TMP/node.stderr" 2>/dev/null ||
			fail "node exited during start-up"
	done
	fail "no free port after 5 attempts"
}

# The value of key i: its number, then filler, 4000 bytes in all (with the
# request around it, under the 4096 bytes bash writes in one go: a second
# small write would wait out TCP delayed ACKs, 40 ms per SET).
FILL=$(head -c 3992 /dev/zero | tr '\0' 'x')

# resp_cmd ARGS...: one RESP request on fd 3.
resp_cmd() {
	local a out
	out="*$#"$'\r\n'
	for a in "$@"; do
		out+="\$${#a}"$'\r\n'"$a"$'\r\n'
	done
	printf '%s' "$out" >&3
}

# read_line VAR: one reply line from fd 3 (CR stripped); fails on EOF or
# after 10 s without one.
read_line() {
	local line
	IFS= read -r -t 10 line <&3 || return 1
	printf -v "$1" '%s' "${line%$'\r'}"
}

start_node
ok "node listening on 127.0.0.1:$PORT, data on a 24 MB tmpfs"

# ---- fill the disk ----
: >"$TMP/acked"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
outcome=
reply=
i=0
t0=$SECONDS
while [ $((SECONDS - t0)) -lt 40 ]; do
	printf -v num '%08d' "$i"
	if ! resp_cmd SET "key:$i" "$num$FILL" 2>/dev/null; then
		outcome="the connection broke while sending"
		break
	fi
	if ! read_line reply; then
		outcome="no reply (connection closed or 10 s timeout)"
		break
	fi
	if [ "$reply" != "+OK" ]; then
		outcome="reply '$reply'"
		break
	fi
	echo "$i" >>"$TMP/acked"
	i=$((i + 1))
done
exec 3>&- || true
acked=$(wc -l <"$TMP/acked" | tr -d ' ')
[ -n "$outcome" ] || fail "the 24 MB disk did not fill in 40 s ($acked writes acknowledged)"
[ "$acked" -gt 100 ] || fail "only $acked writes acknowledged before the failure ($outcome)"
echo "    $acked writes acknowledged, then: $outcome"
df -k "$MNT" | tail -n 1 | sed 's/^/    /'

# ---- how the node failed ----
# Judged now, failed at the end: whatever the verdict, the acknowledged
# writes are checked after the restart too.
verdict=
exited=0
for _ in $(seq 1 100); do
	kill -0 "$NODE_PID" 2>/dev/null || {
		exited=1
		break
	}
	sleep 0.1
done
if [ "$exited" -eq 1 ]; then
	status=0
	wait "$NODE_PID" || status=$?
	NODE_PID=
	if grep -q "disk is probably full" "$TMP/node.log" "$TMP/node.stderr" 2>/dev/null; then
		ok "the node stopped (status $status) and said the disk is probably full"
	else
		verdict="the node exited (status $status) without saying the disk is probably full"
	fi
else
	case "$reply" in
	-*) ok "the node is up and the failed write got an error reply: $reply" ;;
	*) verdict="the node is still running but the failed write got no error reply ($outcome)" ;;
	esac
	# What a new client gets now (for the record).
	probe=$(redis-cli -h 127.0.0.1 -p "$PORT" SET probe "$FILL" 2>&1 | head -c 200 || true)
	echo "    a new client's SET now gets: ${probe:-nothing}"
	kill -KILL "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PID=
fi
[ -z "$verdict" ] || echo "FAIL (checked again at the end) - $verdict"

# ---- more room, restart, every acknowledged write is there ----
mount -o remount,size=200m "$MNT"
start_node
ok "restarted on the same directory with 200 MB of room"
# One GET per acknowledged key through redis-cli (its raw output is the
# value, or an empty line for a missing key), against the values written.
awk '{ printf "GET key:%s\n", $1 }' "$TMP/acked" |
	redis-cli -h 127.0.0.1 -p "$PORT" >"$TMP/got" 2>&1 || true
awk -v fill="$FILL" '{ printf "%08d%s\n", $1, fill }' "$TMP/acked" >"$TMP/want"
if ! cmp -s "$TMP/got" "$TMP/want"; then
	awk -v max=5 'NR == FNR { want[FNR] = $0; n = FNR; next }
		{ got[FNR] = $0 }
		END {
			for (i = 1; i <= n; i++) {
				if (got[i] == want[i]) continue
				bad++
				if (got[i] == "") missing++
				if (bad <= max) printf "    key:%d %s\n", substr(want[i], 1, 8) + 0,
					got[i] == "" ? "is missing" : "has the wrong value"
			}
			printf "    %d of %d acknowledged keys wrong (%d missing)\n", bad, n, missing
		}' "$TMP/want" "$TMP/got"
	fail "acknowledged writes lost after the restart"
fi
ok "all $acked acknowledged keys are there with their values"
[ -z "$verdict" ] || fail "$verdict"
[ "$(redis-cli -h 127.0.0.1 -p "$PORT" SET after restart)" = OK ] ||
	fail "SET after the restart failed"
ok "the node takes writes again"

kill -TERM "$NODE_PID"
rc=0
wait "$NODE_PID" || rc=$?
NODE_PID=
[ "$rc" -eq 0 ] || fail "SIGTERM after the restart: exit status $rc"
ok "SIGTERM exits 0"
echo "all disk-full checks passed"
