#!/usr/bin/env bash
# test_cli: `spectra` and its `node start|stop|status` against a real spectrad.
#
# Help and usage errors for every subcommand; then one node's life: start,
# status (text and JSON), SET/GET with redis-cli, a refused second start, a
# refused start on a taken port, stop, status again, and a restart that
# keeps the data. Then the ways a start or stop goes wrong: a setting
# spectrad refuses (its message must reach the user), a stale pidfile, and a
# process that ignores SIGTERM. Every node is stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both), and
# redis-cli.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-cli.XXXXXX")
dirs=()
stubborn=

cleanup() {
	local d
	for d in "${dirs[@]}"; do
		"$SPECTRA" node stop --dir "$d" --timeout 5 >/dev/null 2>&1 || true
	done
	if [ -n "$stubborn" ]; then kill -9 "$stubborn" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/out "$work"/err; do
		[ -f "$f" ] && { echo "--- $(basename "$f"):" >&2; cat "$f" >&2; }
	done
	exit 1
}

# run WANT CMD...: runs CMD with stdout in $work/out and stderr in
# $work/err, and fails unless it exits WANT.
run() {
	local want=$1 rc=0
	shift
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, wanted $want"
}

# has FILE TEXT: fails unless FILE (out or err) contains TEXT.
has() {
	grep -qF -- "$2" "$work/$1" || fail "expected '$2' in $1"
}

hasnt() {
	! grep -qF -- "$2" "$work/$1" || fail "did not expect '$2' in $1"
}

# alive PID: the process exists and is not a zombie (this machine's init
# may take a moment to reap a stopped node).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# free_port prints a TCP port nothing on 127.0.0.1 listens on. It is
# taken from below the kernel's ephemeral range: a port there may be the
# local end of some client's connection (or its TIME_WAIT), and then a
# server cannot bind it even though nothing listens.
free_port() {
	local low=32768 high p
	# shellcheck disable=SC2034 # high is read only to be skipped
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r low high </proc/sys/net/ipv4/ip_local_port_range
	fi
	[ "$low" -gt 11024 ] || low=32768
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	fail "no free port found"
}

echo "== help and usage errors"
for cmd in "" "node" "node start" "node stop" "node status"; do
	# shellcheck disable=SC2086 # $cmd is words on purpose
	run 0 "$SPECTRA" $cmd --help
	has out "usage: spectra"
	# shellcheck disable=SC2086
	run 0 "$SPECTRA" $cmd -h
	has out "usage: spectra"
done
run 0 "$SPECTRA" --version
has out "spectra "
run 2 "$SPECTRA"
has err "usage: spectra"
run 2 "$SPECTRA" bogus
has err "unknown command 'bogus'"
has err "Run 'spectra --help'"
run 2 "$SPECTRA" --bogus
has err "unknown flag '--bogus'"
run 2 "$SPECTRA" node
run 2 "$SPECTRA" node bogus
has err "spectra node: unknown command 'bogus'"
run 2 "$SPECTRA" node start --bogus 1
has err "spectra node start: unknown flag '--bogus'"
has err "Run 'spectra node start --help'"
run 2 "$SPECTRA" node start --dir
has err "--dir needs a value"
run 2 "$SPECTRA" node stop extra
has err "unexpected argument 'extra'"
run 2 "$SPECTRA" node status --json=yes
run 2 "$SPECTRA" node stop --timeout soon
run 2 "$SPECTRA" node start --port 70000 --dir "$work/never"
has err "port: '70000' is out of range (1..65535)"
run 2 "$SPECTRA" node start --dir "$work/never" -- --pidfile /tmp/x
[ ! -e "$work/never" ] || fail "a refused start created its directory"

echo "== start, status, SET/GET, stop"
port=$(free_port)
dir=$work/node
dirs+=("$dir")
run 3 "$SPECTRA" node status --dir "$dir"
has out "not running"
run 0 "$SPECTRA" node stop --dir "$dir"
has out "not running"

# Run under $(...) as scripts do: start must return even though the node
# it leaves behind lives on (it must not hold the substitution's pipe).
out=$(timeout 30 "$SPECTRA" node start --dir "$dir" --port "$port") ||
	fail "start failed or hung: $out"
echo "$out"
[[ "$out" == "spectra: node started (pid "*", 127.0.0.1:$port, dir $dir)" ]] ||
	fail "unexpected start message: $out"
[ -s "$dir/spectrad.pid" ] || fail "no pidfile after start"
pid=$(cat "$dir/spectrad.pid")
grep -q "^port $port\$" "$dir/node.conf" || fail "node.conf does not record the port"

run 0 "$SPECTRA" node status --dir "$dir"
has out "running (pid $pid)"
has out "address:  127.0.0.1:$port"
has out "fsync:    always"
run 0 "$SPECTRA" node status --dir "$dir" --json
has out "\"running\":true"
has out "\"pid\":$pid"
has out "\"port\":$port"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["answering"] and d["keys"] == 0, d' \
		<"$work/out" || fail "status --json is not the JSON expected"
fi

[ "$(redis-cli -p "$port" SET greeting hello)" = "OK" ] || fail "SET failed"
[ "$(redis-cli -p "$port" GET greeting)" = "hello" ] || fail "GET failed"
run 0 "$SPECTRA" node status --dir "$dir"
has out "keys:     1"

run 1 "$SPECTRA" node start --dir "$dir" --port "$port"
has err "already running (pid $pid"

other=$work/other
dirs+=("$other")
run 1 "$SPECTRA" node start --dir "$other" --port "$port"
has err "already answers on 127.0.0.1:$port"

run 0 "$SPECTRA" node stop --dir "$dir"
has out "node stopped (pid $pid"
[ ! -e "$dir/spectrad.pid" ] || fail "pidfile left after stop"
! alive "$pid" || fail "pid $pid still alive after stop"
! redis-cli -p "$port" PING >/dev/null 2>&1 || fail "port $port still answers after stop"
run 3 "$SPECTRA" node status --dir "$dir"
has out "not running"
run 0 "$SPECTRA" node stop --dir "$dir"
has out "not running"

echo "== restart keeps the data; the relative --dir form works"
(cd "$work" && run 0 "$SPECTRA" node start --dir node --port "$port")
has out "dir $dir)"
[ "$(redis-cli -p "$port" GET greeting)" = "hello" ] || fail "data lost across restart"
(cd "$work" && run 0 "$SPECTRA" node stop --dir node)
has out "node stopped"

echo "== a setting spectrad refuses is reported"
bad=$work/bad
dirs+=("$bad")
run 1 "$SPECTRA" node start --dir "$bad" --port "$(free_port)" -- --fsync sometimes
has err "spectrad exited with status"
has err "fsync: 'sometimes' is not one of always|batch|off"
run 3 "$SPECTRA" node status --dir "$bad"

echo "== a settings file gives the port and settings"
conf_port=$(free_port)
conf=$work/spectrad.conf
printf '# test\r\nport %s\r\nfsync batch\r\n' "$conf_port" >"$conf"
cfg=$work/cfg
dirs+=("$cfg")
run 0 "$SPECTRA" node start --dir "$cfg" --config "$conf"
has out "127.0.0.1:$conf_port"
run 0 "$SPECTRA" node status --dir "$cfg"
has out "fsync:    batch"
run 0 "$SPECTRA" node stop --dir "$cfg"

echo "== a missing server binary is reported"
run 1 "$SPECTRA" node start --dir "$work/nobin" --port "$(free_port)" --spectrad "$work/no-such-spectrad"
has err "cannot run $work/no-such-spectrad"

echo "== a server that never answers is stopped after --wait"
printf '#!/bin/sh\necho "silent server up"\nexec sleep 60\n' >"$work/silent"
chmod +x "$work/silent"
silent=$work/silent-node
dirs+=("$silent")
run 1 "$SPECTRA" node start --dir "$silent" --port "$(free_port)" --spectrad "$work/silent" --wait 1
has err "did not answer PING"
has err "in 1 s; stopping it"
has err "silent server up"

echo "== a stale pidfile"
stale=$work/stale
mkdir -p "$stale"
sleep 0 &
dead=$!
wait "$dead"
echo "$dead" >"$stale/spectrad.pid"
run 3 "$SPECTRA" node status --dir "$stale"
has out "not running (stale pidfile)"
run 0 "$SPECTRA" node stop --dir "$stale"
has out "removed a stale pidfile"
[ ! -e "$stale/spectrad.pid" ] || fail "stale pidfile not removed"

echo "== a process that ignores SIGTERM is killed after --timeout"
hard=$work/hard
mkdir -p "$hard"
# Started from a subshell, so it is not this shell's job (whose death
# bash would announce).
stubborn=$(
	bash -c 'trap "" TERM; touch "$1"; while :; do sleep 0.1; done' stubborn "$hard/ready" \
		</dev/null >/dev/null 2>&1 &
	echo $!
)
for _ in $(seq 1 100); do [ -e "$hard/ready" ] && break; sleep 0.05; done
[ -e "$hard/ready" ] || fail "the SIGTERM-ignoring process did not start"
echo "$stubborn" >"$hard/spectrad.pid"
run 0 "$SPECTRA" node stop --dir "$hard" --timeout 0.5
has out "did not stop within 0.5 s; killed it (pid $stubborn"
stubborn=
hasnt err "still alive"

echo "PASS test_cli"
