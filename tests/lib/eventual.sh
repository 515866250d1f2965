# shellcheck shell=bash
# eventual.sh: helpers the eventual-keyspace shell tests share. Source it
# after defining `cli ID ARGS...` (one command to node ID, raw reply).
#
#   info_field ID NAME   one field of node ID's INFO eventual
#   converged IDS...     true when every node's EVENTUAL DIGEST agrees on
#                        the Merkle root of every (rf, range) any of them
#                        lists
#   wait_converged SECONDS IDS...
#                        waits until converged; prints the milliseconds it
#                        took, or returns 1 after SECONDS

info_field() {
	cli "$1" info eventual | sed -n "s/^$2://p"
}

converged() {
	local id
	for id in "$@"; do
		cli "$id" eventual digest
	done | awk '{k=$1" "$2; if (k in r && r[k] != $3) bad=1; r[k]=$3} END {exit bad}'
}

wait_converged() {
	local limit=$1 t0 now
	shift
	t0=$(date +%s%N)
	while :; do
		if converged "$@"; then
			now=$(date +%s%N)
			echo $(((now - t0) / 1000000))
			return 0
		fi
		now=$(date +%s%N)
		[ $(((now - t0) / 1000000000)) -lt "$limit" ] || return 1
		sleep 0.1
	done
}
