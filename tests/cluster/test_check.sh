#!/usr/bin/env bash
# test_check: `spectra check` on recorded histories, by exit status.
#
# Every hand-made history in tests/check/histories is checked: good-* and
# info-* (an unknown write that did or did not take effect) must exit 0,
# bad-* must exit 1 and show the operations that explain the violation.
# Then: reading from stdin, --json, usage errors and malformed input (64,
# with the line named), an empty history, and a history built here that
# no search finishes (many concurrent writes of one key, reads that agree
# with no order of them): with --timeout 1 it must exit 2 within a few
# seconds, and with --max-steps at once.
#
# With --model causal, every history in tests/check/causal: good-* must
# exit 0, bad-<pattern>.jsonl must exit 1 and name the pattern (the file
# name after "bad-", e.g. bad-read-your-writes names read-your-writes),
# in text and in --json; then the causal model's bad input (a value
# written twice, a cas, wrong flags) exits 64 with the line named.
#
# Needs $SPECTRA (scripts/run-tests.sh exports it); no node is started.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
SPECTRA=${SPECTRA:-$root/bin/spectra}
histories=$root/tests/check/histories
causal=$root/tests/check/causal

work=$(mktemp -d "${TMPDIR:-/tmp}/spectra-test-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

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

# ---- the hand-made histories ---------------------------------------------

n_good=0
n_bad=0
for f in "$histories"/*.jsonl; do
	name=$(basename "$f" .jsonl)
	case $name in
	good-* | info-*)
		run 0 "$SPECTRA" check "$f"
		has out "verdict:  linearizable"
		n_good=$((n_good + 1))
		;;
	bad-*)
		run 1 "$SPECTRA" check "$f"
		has out "verdict:  NOT linearizable"
		has out "  bad  "
		run 1 "$SPECTRA" check --json "$f"
		has out '"verdict":"violation"'
		has out '"relation":"bad"'
		n_bad=$((n_bad + 1))
		;;
	*)
		fail "$f: name it good-*, info-* or bad-*"
		;;
	esac
done
[ "$n_good" -ge 8 ] || fail "only $n_good good histories"
[ "$n_bad" -ge 8 ] || fail "only $n_bad bad histories"
echo "hand-made histories: $n_good good, $n_bad bad"

# The stale read's explanation: the write of what it read, the write
# that overwrote it, the read; times from the first call.
run 1 "$SPECTRA" check "$histories/bad-stale-read.jsonl"
has out 'key "k1" is the first of 1 key that is not'
has out 'The read on line 3 (process 3, from +200 to +350) saw "v1"'
grep -qE '^  before +1 +1  write   "v1" +\+0 +\+100  ok' "$work/out" || fail "no write v1 row"
grep -qE '^  before +2 +2  write   "v2" +\+150 +\+190  ok' "$work/out" || fail "no write v2 row"
grep -qE '^  bad +3 +3  read    "v1" +\+200 +\+350  ok' "$work/out" || fail "no bad row"
[ "$(grep -cE '^  (before|during|bad) ' "$work/out")" -eq 3 ] || fail "not 3 rows"

# Two CAS that both won: the other one overlaps.
run 1 "$SPECTRA" check "$histories/bad-cas-double-win.jsonl"
has out 'during'
has out '"free" -> "held-by-2"'

# Summary counts.
run 0 "$SPECTRA" check "$histories/good-failed-ops.jsonl"
has out "ops:      7 (ok 3, fail 3, info 1)"
run 0 "$SPECTRA" check "$histories/info-never-visible.jsonl"
has out "(ok 3, fail 0, info 2)"
run 0 "$SPECTRA" check "$histories/good-binary-keys.jsonl"
has out "keys:     3"

# ---- stdin, --json ------------------------------------------------------

run 1 "$SPECTRA" check - <"$histories/bad-lost-write.jsonl"
has out "history:  -"
has out "NOT linearizable"
run 0 "$SPECTRA" check --json - <"$histories/good-sequential.jsonl"
has out '"verdict":"linearizable"'
has out '"ops":7'
has out '"keys":2'
[ "$(wc -l <"$work/out")" -eq 1 ] || fail "--json printed more than one line"
run 0 "$SPECTRA" check "$histories/good-cas-chain.jsonl" --json --timeout=5

# A violation in the second key of several.
{
	cat "$histories/good-sequential.jsonl"
	sed 's/"k1"/"other"/' "$histories/bad-stale-read.jsonl"
} >"$work/two.jsonl"
run 1 "$SPECTRA" check "$work/two.jsonl"
has out 'key "other" is the first of 1 key'
has out 'The read on line 10'

# ---- usage and bad input --------------------------------------------------

run 0 "$SPECTRA" check --help
has out "usage: spectra check"
has out "Exit status"
run 64 "$SPECTRA" check
has err "which history?"
run 64 "$SPECTRA" check a.jsonl b.jsonl
has err "one FILE at a time"
run 64 "$SPECTRA" check --frobnicate "$histories/good-delete.jsonl"
has err "unknown flag '--frobnicate'"
run 64 "$SPECTRA" check --timeout soon "$histories/good-delete.jsonl"
has err "--timeout: 'soon' is not a number of seconds"
run 64 "$SPECTRA" check --timeout -1 "$histories/good-delete.jsonl"
run 64 "$SPECTRA" check --max-steps many "$histories/good-delete.jsonl"
run 64 "$SPECTRA" check "$histories/good-delete.jsonl" --timeout
has err "--timeout needs a value"
run 64 "$SPECTRA" check "$work/does-not-exist.jsonl"
has err "does-not-exist.jsonl: No such file or directory"

{
	head -n 2 "$histories/good-sequential.jsonl"
	echo
	echo '{"process":1,"op":"get","key":"k","invoke":1,"complete":2,"result":"ok"}'
} >"$work/bad-op.jsonl"
run 64 "$SPECTRA" check "$work/bad-op.jsonl"
has err 'line 4: unknown op "get" (want read, write, cas or delete)'
run 64 "$SPECTRA" check --json "$work/bad-op.jsonl"
has out '"verdict":"error"'
has out 'line 4: unknown op'

printf '%s\n' '{"process":1,"op":"write","key":"k","value":"v","invoke":10,"complete":5,"result":"ok"}' >"$work/backwards.jsonl"
run 64 "$SPECTRA" check "$work/backwards.jsonl"
has err 'line 1: "complete" (5) is before "invoke" (10)'
printf 'not json at all\n' >"$work/garbage.jsonl"
run 64 "$SPECTRA" check "$work/garbage.jsonl"
has err "line 1: not JSON"

# An empty history is linearizable.
: >"$work/empty.jsonl"
run 0 "$SPECTRA" check "$work/empty.jsonl"
has out "ops:      0 (ok 0, fail 0, info 0)"

# ---- --model causal ---------------------------------------------------------

# The pattern each bad-* history must be reported under.
pattern_of() {
	case $1 in
	bad-cyclic-co) echo CyclicCO ;;
	bad-write-co-read) echo WriteCORead ;;
	bad-write-co-init-read) echo WriteCOInitRead ;;
	bad-thin-air-read) echo ThinAirRead ;;
	bad-*) echo "${1#bad-}" ;;
	esac
}

n_good=0
n_bad=0
for f in "$causal"/*.jsonl; do
	name=$(basename "$f" .jsonl)
	case $name in
	good-*)
		run 0 "$SPECTRA" check --model causal "$f"
		has out "model:    causal"
		has out "verdict:  causal"
		run 0 "$SPECTRA" check --model=causal --json "$f"
		has out '"verdict":"causal"'
		has out '"violations":0'
		n_good=$((n_good + 1))
		;;
	bad-*)
		kind=$(pattern_of "$name")
		run 1 "$SPECTRA" check --model causal "$f"
		has out "verdict:  NOT causal: 1 violation ($kind 1)"
		grep -q "^$kind: " "$work/out" || fail "$name: no '$kind:' paragraph"
		run 1 "$SPECTRA" check --model causal --json "$f"
		has out '"verdict":"violation"'
		has out "\"kind\":\"$kind\""
		[ "$(wc -l <"$work/out")" -eq 1 ] || fail "--json printed more than one line"
		n_bad=$((n_bad + 1))
		;;
	*)
		fail "$f: name it good-* or bad-*"
		;;
	esac
done
[ "$n_good" -ge 3 ] || fail "only $n_good good causal histories"
[ "$n_bad" -ge 8 ] || fail "only $n_bad bad causal histories"
echo "causal histories: $n_good good, $n_bad bad"

# The ops of a violation, by role, with session, node and times.
run 1 "$SPECTRA" check --model causal "$causal/bad-writes-follow-reads.jsonl"
has out 'the read on line 5 (session "s3", node 3) of key "k" saw nil'
grep -qE '^  via-read +2  "s2" +2 +2  read ' "$work/out" || fail "no via-read row"
grep -qE '^  via-write +3  "s2" +2 +2  write ' "$work/out" || fail "no via-write row"
grep -qE '^  read +5  "s3" +3 +3  read +"k" +nil +\+400 +\+410  ok' "$work/out" ||
	fail "no read row"
run 1 "$SPECTRA" check --model causal --json "$causal/bad-monotonic-reads.jsonl"
has out '"role":"via-read","line":4,"session":"s3","node":2,"process":3'
has out '"counts":{"monotonic-reads":1}'

# A linearizable history is causal; the default model is unchanged.
run 0 "$SPECTRA" check --model causal "$histories/good-sequential.jsonl"
run 1 "$SPECTRA" check --model causal - <"$causal/bad-thin-air-read.jsonl"
has out "history:  -"
run 0 "$SPECTRA" check --model linearizable "$histories/good-sequential.jsonl"
has out "verdict:  linearizable"
run 0 "$SPECTRA" check "$causal/bad-read-your-writes.jsonl" --model causal --help
has out "--model"
has out "read-your-writes"

# Bad input for the causal model.
{
	echo '{"process":1,"op":"write","key":"k","value":"same","invoke":1,"complete":2,"result":"ok"}'
	echo '{"process":2,"op":"write","key":"j","value":"same","invoke":1,"complete":2,"result":"fail"}'
} >"$work/dup.jsonl"
run 64 "$SPECTRA" check --model causal "$work/dup.jsonl"
has err "line 2: a value written twice"
has err "(first written on line 1)"
run 64 "$SPECTRA" check --model causal --json "$work/dup.jsonl"
has out '"verdict":"error"'
run 0 "$SPECTRA" check "$work/dup.jsonl" # linearizability allows it
run 64 "$SPECTRA" check --model causal "$histories/good-cas-chain.jsonl"
has err 'is not in the causal model (read and write only)'
printf '%s\n' '{"process":1,"session":5,"op":"read","key":"k","value":null,"invoke":1,"complete":2,"result":"ok"}' >"$work/session.jsonl"
run 64 "$SPECTRA" check --model causal "$work/session.jsonl"
has err 'line 1: "session" must be a string or null'
run 0 "$SPECTRA" check "$work/session.jsonl"
run 64 "$SPECTRA" check --model serializable "$causal/good-sessions.jsonl"
has err "--model: 'serializable' is not linearizable or causal"
run 64 "$SPECTRA" check --model causal --timeout 5 "$causal/good-sessions.jsonl"
has err "--timeout does not apply to --model causal"
run 0 "$SPECTRA" check --model causal "$work/empty.jsonl"
has out "ops:      0 (ok 0, fail 0, info 0)"

# ---- a search that cannot finish ----------------------------------------

# 40 writes of distinct values, all concurrent; 40 reads during them,
# each seeing one of the values; then, after every write has returned,
# two reads in a row that see different values. Not linearizable, but
# the search must try the writes' orders to know it: 2^40 of them.
writers=40
{
	for ((i = 0; i < writers; i++)); do
		printf '{"process":%d,"op":"write","key":"hot","value":"v%d","invoke":%d,"complete":%d,"result":"ok"}\n' \
			"$i" "$i" "$i" $((1000000 - i))
	done
	for ((i = 0; i < writers; i++)); do
		printf '{"process":%d,"op":"read","key":"hot","value":"v%d","invoke":%d,"complete":%d,"result":"ok"}\n' \
			$((writers + i)) $(((i * 7) % writers)) $((100 + i)) $((999000 - i))
	done
	echo '{"process":0,"op":"read","key":"hot","value":"v0","invoke":1000001,"complete":1000002,"result":"ok"}'
	echo '{"process":0,"op":"read","key":"hot","value":"v1","invoke":1000003,"complete":1000004,"result":"ok"}'
	# A small key after it: not searched once time is up.
	echo '{"process":1,"op":"write","key":"cold","value":"x","invoke":5,"complete":6,"result":"ok"}'
} >"$work/adversarial.jsonl"

t0=$(date +%s%N)
run 2 "$SPECTRA" check --timeout 1 "$work/adversarial.jsonl"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "adversarial history, --timeout 1: exit 2 after ${ms} ms"
[ "$ms" -ge 1000 ] || fail "gave up before the time bound (${ms} ms)"
[ "$ms" -le 6000 ] || fail "took ${ms} ms to give up after a 1 s bound"
has out 'verdict:  unknown: gave up on key "hot" when the time bound (1 s) ran out'
has out "0 of 2 keys linearizable, 2 undecided (1 not searched)"

run 2 "$SPECTRA" check --json --timeout 0.5 "$work/adversarial.jsonl"
has out '"verdict":"unknown"'
has out '"key":"hot"'
has out '"stopped":true'

t0=$(date +%s%N)
run 2 "$SPECTRA" check --max-steps 20000 "$work/adversarial.jsonl"
t1=$(date +%s%N)
has out "at the step bound"
[ $(((t1 - t0) / 1000000)) -le 3000 ] || fail "--max-steps 20000 took too long"

echo "test_check: ok"
