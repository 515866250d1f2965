# shellcheck shell=bash
# ports.sh: helpers the shell tests and benchmarks share for running real
# nodes. Source it; it defines functions only.
#
#   alive PID       true while PID runs (a zombie has exited: this machine's
#                   init reaps orphans late, so kill -0 alone is not enough)
#   free_base N     prints a port P with P..P+N-1 all free on 127.0.0.1,
#                   below the kernel's ephemeral range (whose ports client
#                   sockets take) and clear of the ports in $taken; returns
#                   1 with a message on stderr if it finds none

alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

taken=" "
free_base() {
	local n=$1 low=32768 high p i ok
	# shellcheck disable=SC2034 # high is read only to be skipped
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r low high </proc/sys/net/ipv4/ip_local_port_range
	fi
	[ "$low" -gt 11024 ] || low=32768
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % (low - 10000 - n)))
		ok=1
		for i in $(seq 0 $((n - 1))); do
			if [[ "$taken" == *" $((p + i)) "* ]] ||
				(exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null; then
				ok=0
				break
			fi
		done
		if [ "$ok" = 1 ]; then
			for i in $(seq 0 $((n - 1))); do taken="$taken$((p + i)) "; done
			echo "$p"
			return 0
		fi
	done
	echo "no $n free ports in a row" >&2
	return 1
}
