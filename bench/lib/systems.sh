# shellcheck shell=bash
# systems.sh: start and stop the systems the benchmarks compare, each on
# free 127.0.0.1 ports below the ephemeral range. Source it after
# tests/lib/ports.sh, with TMP (a scratch directory) and SPECTRA set, and
# call sys_stop_all on exit. Functions only.
#
#   sys_spectra NAME NODES [spectrad flags...]
#       a `spectra cluster up` cluster in $TMP/NAME; sets SPECTRA_DIR,
#       SPECTRA_BASE (node i's client port is SPECTRA_BASE+i-1), SPECTRA_HOSTS
#   sys_spectra_leader   the id of the node a majority names as leader
#   sys_redis REPLICAS [redis-server flags...]
#       a primary and REPLICAS replicas, no persistence; sets REDIS_BASE,
#       REDIS_PRIMARY, REDIS_ALL, REDIS_PIDS (index 0 is the primary)
#   sys_etcd NODES [etcd flags...]
#       an etcd cluster (Debian's etcd-server); sets ETCD_HOSTS,
#       ETCD_ENDPOINTS (http://...), ETCD_PIDS, ETCD_CMDS (each member's
#       command line, to restart it)
#   sys_etcd_leader      the index (0-based) of the member that leads
#   sys_etcd_restart I   start member I again on its data
#   sys_etcd_check       restart members that exited (and say so)
#   sys_stop_all         stop everything started here
#   sys_stop_pid PID     SIGTERM, then SIGKILL after 10 s
#   sys_tail_logs N FILE...  the last N lines of each non-empty FILE, under
#                        a header naming it (for a failed run's cleanup)

SYS_PIDS=()

sys_die() {
	echo "systems: $*" >&2
	exit 1
}

sys_stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		alive "$pid" || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

sys_tail_logs() {
	local n=$1 log
	shift
	for log in "$@"; do
		[ -s "$log" ] || continue
		echo "---- last $n lines of ${log#"$TMP"/} ----"
		tail -n "$n" "$log"
	done
}

sys_stop_all() {
	local pid d
	for d in "$TMP"/spectra-*; do
		[ -f "$d/cluster.conf" ] &&
			"$SPECTRA" cluster down --dir "$d" --timeout 10 >/dev/null 2>&1
	done
	for pid in "${SYS_PIDS[@]}"; do
		sys_stop_pid "$pid"
	done
	SYS_PIDS=()
}

# sys_wait_port PORT PID: wait until something answers on PORT (PID alive).
sys_wait_port() {
	for _ in $(seq 1 300); do
		alive "$2" || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

SPECTRA_DIR=
SPECTRA_BASE=
SPECTRA_HOSTS=
# sys_group_up NAME BASE LOGS PID...: the servers just started (server i
# on port BASE + i, its pid the i-th PID) all answer: 0. One did not: they
# are stopped, and 1 (retry on other ports) when a log glob LOGS says a
# port was in use, else the run dies with the logs' tails.
sys_group_up() {
	local name=$1 base=$2 logs=$3 i=0 up=1 p
	shift 3
	for p in "$@"; do
		sys_wait_port $((base + i)) "$p" || up=0
		i=$((i + 1))
	done
	[ "$up" = 1 ] && return 0
	for p in "$@"; do sys_stop_pid "$p"; done
	# shellcheck disable=SC2086 # LOGS is a glob
	grep -qi "in use" $logs || sys_die "$name did not start: $(tail -n 5 $logs)"
	return 1
}

sys_spectra() {
	local name=$1 nodes=$2 rc peer i
	shift 2
	SPECTRA_DIR=$TMP/spectra-$name
	for _ in 1 2 3; do
		SPECTRA_BASE=$(free_base "$nodes")
		peer=$(free_base "$nodes")
		rc=0
		"$SPECTRA" cluster up --nodes "$nodes" --dir "$SPECTRA_DIR" --base-port "$SPECTRA_BASE" \
			--peer-base-port "$peer" --http-base-port 0 --name "$name" --wait 60 \
			-- --loglevel warn "$@" >"$TMP/up-$name.out" 2>&1 || rc=$?
		[ "$rc" -eq 0 ] && break
		"$SPECTRA" cluster down --dir "$SPECTRA_DIR" >/dev/null 2>&1 || true
		grep -q "already answers\|in use" "$TMP/up-$name.out" ||
			sys_die "spectra cluster up failed: $(tail -n 5 "$TMP/up-$name.out")"
		rm -rf "$SPECTRA_DIR"
	done
	[ "$rc" -eq 0 ] || sys_die "spectra: no free ports after 3 attempts"
	SPECTRA_HOSTS=
	for i in $(seq 0 $((nodes - 1))); do
		SPECTRA_HOSTS="$SPECTRA_HOSTS${SPECTRA_HOSTS:+,}127.0.0.1:$((SPECTRA_BASE + i))"
	done
}

sys_spectra_leader() {
	"$SPECTRA" cluster status --dir "$SPECTRA_DIR" --json 2>/dev/null |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("leader") or "")'
}

REDIS_BASE=
REDIS_PRIMARY=
REDIS_ALL=
REDIS_PIDS=()
sys_redis() {
	local replicas=$1 i port dir up=0
	shift
	for _ in 1 2 3; do
		REDIS_BASE=$(free_base $((replicas + 1)))
		REDIS_PIDS=()
		for i in $(seq 0 "$replicas"); do
			port=$((REDIS_BASE + i))
			dir=$TMP/redis-$i
			rm -rf "$dir"
			mkdir -p "$dir"
			local role=()
			[ "$i" -eq 0 ] || role=(--replicaof 127.0.0.1 "$REDIS_BASE")
			redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
				--appendonly no --databases 1 --repl-diskless-sync yes \
				--repl-diskless-sync-delay 0 "${role[@]}" "$@" >"$dir/redis.log" 2>&1 &
			REDIS_PIDS+=($!)
			SYS_PIDS+=($!)
		done
		sys_group_up redis-server "$REDIS_BASE" "$TMP/redis-*/redis.log" "${REDIS_PIDS[@]}" &&
			up=1 && break
		up=0
	done
	[ "$up" = 1 ] || sys_die "redis: no free ports after 3 attempts"
	REDIS_PRIMARY=127.0.0.1:$REDIS_BASE
	REDIS_ALL=
	for i in $(seq 0 "$replicas"); do
		REDIS_ALL="$REDIS_ALL${REDIS_ALL:+,}127.0.0.1:$((REDIS_BASE + i))"
	done
	local linked
	for _ in $(seq 1 200); do
		linked=0
		for i in $(seq 1 "$replicas"); do
			redis-cli -p $((REDIS_BASE + i)) INFO replication 2>/dev/null |
				grep -q "master_link_status:up" && linked=$((linked + 1))
		done
		[ "$linked" -eq "$replicas" ] && break
		sleep 0.1
	done
	[ "$linked" -eq "$replicas" ] || sys_die "redis: only $linked of $replicas replicas linked"
}

ETCD_HOSTS=
ETCD_ENDPOINTS=
ETCD_PIDS=()
ETCD_CMDS=()
sys_etcd() {
	local nodes=$1 i cbase pbase initial up=0 name dir
	shift
	command -v etcd >/dev/null || sys_die "etcd not installed (make deps: etcd-server)"
	for _ in 1 2 3; do
		cbase=$(free_base "$nodes")
		pbase=$(free_base "$nodes")
		initial=
		for i in $(seq 0 $((nodes - 1))); do
			initial="$initial${initial:+,}e$i=http://127.0.0.1:$((pbase + i))"
		done
		ETCD_PIDS=()
		ETCD_CMDS=()
		ETCD_HOSTS=
		ETCD_ENDPOINTS=
		for i in $(seq 0 $((nodes - 1))); do
			name=e$i
			dir=$TMP/etcd-$i
			rm -rf "$dir"
			mkdir -p "$dir"
			ETCD_CMDS+=("etcd --name $name --data-dir $dir/data \
--listen-client-urls http://127.0.0.1:$((cbase + i)) \
--advertise-client-urls http://127.0.0.1:$((cbase + i)) \
--listen-peer-urls http://127.0.0.1:$((pbase + i)) \
--initial-advertise-peer-urls http://127.0.0.1:$((pbase + i)) \
--initial-cluster $initial --initial-cluster-state new \
--initial-cluster-token bench --log-level error $*")
			# shellcheck disable=SC2086 # the command line is words
			${ETCD_CMDS[$i]} >>"$dir/etcd.log" 2>&1 &
			ETCD_PIDS+=($!)
			SYS_PIDS+=($!)
			ETCD_HOSTS="$ETCD_HOSTS${ETCD_HOSTS:+,}127.0.0.1:$((cbase + i))"
			ETCD_ENDPOINTS="$ETCD_ENDPOINTS${ETCD_ENDPOINTS:+,}http://127.0.0.1:$((cbase + i))"
		done
		sys_group_up etcd "$cbase" "$TMP/etcd-*/etcd.log" "${ETCD_PIDS[@]}" && up=1 && break
		up=0
	done
	[ "$up" = 1 ] || sys_die "etcd: no free ports after 3 attempts"
	for _ in $(seq 1 200); do
		ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint health >/dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	sys_die "etcd: the cluster did not become healthy in 20 s"
}

# sys_etcd_restart I: start member I again on its data.
sys_etcd_restart() {
	local i=$1
	alive "${ETCD_PIDS[$i]}" && return 0
	# shellcheck disable=SC2086 # the command line is words
	${ETCD_CMDS[$i]/--initial-cluster-state new/--initial-cluster-state existing} \
		>>"$TMP/etcd-$i/etcd.log" 2>&1 &
	ETCD_PIDS[i]=$!
	SYS_PIDS+=($!)
}

# sys_etcd_healthy SECONDS: wait until every member answers healthy (a
# member still working off a 10,000-client row may take a while).
sys_etcd_healthy() {
	local tries=$(($1 * 5))
	for _ in $(seq 1 "$tries"); do
		ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --command-timeout 2s \
			endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

sys_etcd_leader() {
	local got
	for _ in $(seq 1 30); do
		got=$(sys_etcd_leader_once)
		[ -n "$got" ] && break
		sleep 1
	done
	echo "$got"
}

sys_etcd_leader_once() {
	ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --command-timeout 3s endpoint status -w json 2>/dev/null |
		/usr/bin/python3 -c '
import json, sys
for e in json.load(sys.stdin):
    st = e.get("Status") or {}
    if st.get("leader") and st.get("header", {}).get("member_id") == st["leader"]:
        # Members are listed in endpoint order, but a dead one is left
        # out: find the index by the endpoint.
        print(sys.argv[1].split(",").index(e["Endpoint"]))
        break' "$ETCD_ENDPOINTS"
}

# sys_etcd_check: restart every member that exited (their number and the
# reason their log gives are printed) and wait until the cluster is
# healthy again. Returns 1 if a member had exited.
sys_etcd_check() {
	local i died=0 why
	for i in "${!ETCD_PIDS[@]}"; do
		alive "${ETCD_PIDS[$i]}" && continue
		died=1
		why=$(grep -m1 -E "^(panic|fatal)|too many open files|out of memory" "$TMP/etcd-$i/etcd.log" || true)
		echo "systems: etcd member $i exited${why:+: $why}; restarting it" >&2
		sys_etcd_restart "$i"
	done
	[ "$died" = 1 ] || return 0
	sys_etcd_healthy 30 && return 1
	sys_die "etcd: the cluster did not recover in 30 s after a member exited"
}
