#!/usr/bin/env bash
# test_dashboard: a node's HTTP dashboard, loaded in headless Chromium from
# a 3-node cluster of real spectrad processes started by `spectra cluster up`.
#
#  1. every node's /status answers, and one of them reports itself leader;
#  2. a little load (200 SETs and 200 GETs through node 1) so the tables
#     have rows;
#  3. node 1's / is served as text/html and names no http(s) URL, so the
#     page fetches nothing from elsewhere;
#  4. Chromium renders node 1's / (which polls the relative URL 'status'):
#     the DOM has <body data-ready="1">, 3 rows with data-node-id in
#     #members, at least one row in #levels, and no error banner;
#  5. a screenshot is saved to $BUILD/dashboard.png (a PNG over 10 KB).
# Every node and every Chromium process is stopped on exit, pass or fail.
#
# Needs $SPECTRA and $SPECTRAD (scripts/run-tests.sh exports both),
# redis-cli, curl and chromium (scripts/deps.sh installs them all). With
# no chromium the test fails: it does not skip.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
SPECTRAD=${SPECTRAD:-$root/bin/spectrad}
export SPECTRAD

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-dashboard.XXXXXX")
dir=$work/c
chrome_pid=

cleanup() {
	# Chromium runs under `timeout`, which leads a process group of its
	# own (pgid = its pid): the whole group goes, then anything still
	# naming this run's private directories (crashpad handlers leave the
	# group, but name their database under $work/home).
	if [ -n "$chrome_pid" ]; then kill -9 -- "-$chrome_pid" 2>/dev/null || true; fi
	pkill -9 -f -- "$work/" 2>/dev/null || true
	cluster_kill "$dir"
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	node_logs "$dir"
	exit 1
}

# shellcheck source=tests/lib/ports.sh
source "$root/tests/lib/ports.sh"
# shellcheck source=tests/lib/cluster.sh
source "$root/tests/lib/cluster.sh"

chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] ||
	fail "chromium is not installed: the dashboard test needs it (scripts/deps.sh installs the Debian package 'chromium')"
command -v curl >/dev/null || fail "curl is not installed (scripts/deps.sh installs it)"

# chrome OUTFILE URL FLAGS...: headless Chromium on URL, its stdout in
# OUTFILE, bounded to 25 s. --virtual-time-budget lets the page run 5 s of
# virtual time (about 5 refreshes) and then dumps or shoots at once;
# virtual time stands still while a fetch is in flight, so the first
# /status answer always lands before the dump (a node that never answers
# leaves Chromium waiting: the timeout ends it). Root needs --no-sandbox;
# HOME and the XDG directories point into $work so nothing is written
# outside it (crash-report database, dconf, caches).
chrome() {
	local out=$1 url=$2 rc=0
	shift 2
	mkdir -p "$work/home"
	HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache \
		timeout -k 5 25 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
		--no-first-run --no-default-browser-check --disable-extensions --disable-sync \
		--disable-background-networking --disable-component-update --hide-scrollbars \
		--user-data-dir="$work/chromium" --window-size=1280,1100 --virtual-time-budget=5000 \
		"$@" "$url" >"$out" 2>"$work/chrome.err" &
	chrome_pid=$!
	wait "$chrome_pid" || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		grep -v "ERROR:dbus/" "$work/chrome.err" | tail -n 20 >&2
		fail "chromium on $url did not finish within 25 s (does GET /status answer?)"
	elif [ "$rc" -ne 0 ]; then
		grep -v "ERROR:dbus/" "$work/chrome.err" | tail -n 20 >&2
		fail "chromium on $url exited with status $rc"
	fi
}

base=$(free_base 3)
pbase=$(free_base 3)
hbase=$(free_base 3)
hport() { echo $(($1 + hbase - 1)); }

"$SPECTRA" cluster up --nodes 3 --dir "$dir" --base-port "$base" --peer-base-port "$pbase" \
	--http-base-port "$hbase" -- --election-timeout-ms 500 --heartbeat-ms 50 \
	--admin-commands yes --stale-sample-every 5 \
	>"$work/up.out" 2>&1 || { cat "$work/up.out"; fail "cluster up"; }

# 1. every node's /status answers; one reports itself leader
leader=
for _ in $(seq 1 100); do
	answered=0 leader=
	for i in 1 2 3; do
		if s=$(curl -fsS --max-time 2 "http://127.0.0.1:$(hport "$i")/status" 2>/dev/null); then
			answered=$((answered + 1))
			if [[ "$s" =~ \"role\"[[:space:]]*:[[:space:]]*\"leader\" ]]; then leader=$i; fi
		fi
	done
	[ "$answered" = 3 ] && [ -n "$leader" ] && break
	sleep 0.1
done
[ "$answered" = 3 ] || fail "only $answered of 3 nodes answer GET /status after 10 s"
[ -n "$leader" ] || fail "no node's /status reports role leader after 10 s"
ok "every node's /status answers; node $leader reports itself leader"

# 2. load, so the levels table has rows
for i in $(seq 1 200); do
	echo "SET dash:k$i v$i"
	echo "GET dash:k$i"
done | timeout 30 redis-cli -p "$(port 1)" >"$work/load.out" 2>&1 || fail "redis-cli load: $(tail -n 3 "$work/load.out")"
n=$(grep -c '^OK' "$work/load.out" || true)
[ "$n" = 200 ] || fail "$n of 200 SETs answered OK: $(grep -v '^OK\|^v' "$work/load.out" | head -n 3)"
ok "200 SETs and 200 GETs through node 1"

# 3. the page itself: text/html, nothing fetched from elsewhere
url="http://127.0.0.1:$(hport 1)/"
ctype=$(curl -fsS --max-time 5 -o "$work/page.html" -w '%{content_type}' "$url") || fail "GET $url"
[[ "$ctype" == text/html* ]] || fail "GET / has Content-Type '$ctype', want text/html"
if grep -Eion 'https?://[^"'"'"' )<>]*' "$work/page.html" >"$work/urls"; then
	fail "the page names absolute URLs (it must fetch nothing from elsewhere): $(head -n 5 "$work/urls" | tr '\n' ' ')"
fi
if grep -Eion '(src|href|action)[[:space:]]*=[[:space:]]*["'"'"']?//' "$work/page.html" >"$work/urls"; then
	fail "the page names protocol-relative URLs: $(head -n 5 "$work/urls" | tr '\n' ' ')"
fi
ok "GET / is $ctype, $(wc -c <"$work/page.html") bytes, with no http(s) URL in it"

# 4. the rendered DOM
chrome "$work/dom.html" "$url" --dump-dom
dom=$(tr '\n' ' ' <"$work/dom.html")
body=$(grep -o '<body[^>]*>' <<<"$dom" | head -n 1 || true)
banner=$(grep -o '<div id="error"[^>]*>[^<]*' <<<"$dom" | head -n 1 || true)
[[ "$body" == *'data-ready="1"'* ]] ||
	fail "the dashboard never rendered: body is '$body'; banner '$banner'"
[[ "$banner" == *hidden* ]] || fail "the dashboard shows an error: ${banner#*>}"
members=${dom#*<tbody id=\"members\">}
members=${members%%</tbody>*}
rows=$(grep -o 'data-node-id="[0-9][0-9]*"' <<<"$members" | sort -u | wc -l)
[ "$rows" = 3 ] || fail "#members has $rows rows with a data-node-id, want 3: ${members:0:400}"
[[ "$body" == *'data-members="3"'* ]] || fail "body data-members is not 3: '$body'"
levels=${dom#*<tbody id=\"levels\">}
levels=${levels%%</tbody>*}
lrows=$(grep -o '<tr data-key="[^"]*"' <<<"$levels" | wc -l)
[ "$lrows" -ge 1 ] || fail "#levels has no rows after 400 commands: ${levels:0:400}"
node=$(grep -o '<span id="node-id">[^<]*' <<<"$dom" | head -n 1 || true)
[ "${node#*>}" = 1 ] || fail "the header names node '${node#*>}', want 1"
ok "the dashboard renders: data-ready=1, 3 members, $lrows rows in #levels, no error banner"

# 5. the screenshot, while node 1 serves feature reads at ONE and node 2
# writes them with 100 ms injected on its link to node 1, so the picture
# shows traffic and a measured stale-read rate
[ "$(cli 1 keyspace create dash_ev mode eventual rf 3)" = OK ] || fail "keyspace create"
sleep 0.5
[ "$(cli 2 debug net faults 0 0 0 100 0 to 1)" = OK ] || fail "debug net faults"
/usr/bin/python3 "$root/tests/lib/rw_load.py" "$(port 2)" "$(port 1)" dash_ev:k 50 9 quorum one 20 \
	>"$work/rw.out" 2>&1 &
load_pid=$!
sleep 4
png="$root/${BUILD:-build}/dashboard.png"
mkdir -p "$(dirname "$png")"
rm -f "$png"
chrome "$work/shot.out" "$url" --screenshot="$png"
[ -f "$png" ] || fail "no screenshot at $png"
magic=$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')
[ "$magic" = 89504e470d0a1a0a ] || fail "$png is not a PNG (starts $magic)"
size=$(stat -c %s "$png")
[ "$size" -gt 10240 ] || fail "$png is only $size bytes"
ok "screenshot saved to $png ($size bytes)"
wait "$load_pid" || fail "the background load failed: $(tail -n 3 "$work/rw.out")"
