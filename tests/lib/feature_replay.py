#!/usr/bin/python3
"""feature_replay: the feature store's promises on a 3-node cluster.

Usage: feature_replay.py PORT1 PORT2 PORT3 VIEW SEED

VIEW is a feature view (KEYSPACE CREATE VIEW MODE causal FEATURES yes TTL
3600000 HISTORY 4) on nodes listening on PORT1..3, with admin commands on
(DEBUG NET PARTITION). Each check prints "ok - ..." or raises (exit 1):

 1. replay: 20 batches (one MULTI/EXEC of FEATURE.SETs over 8 entities,
    event times T0 + b s) are sent in a shuffled order to the three nodes,
    then 10 old ones again; every node ends with batch 20's values, the
    history holds batches 17..20, ASOF reads answer the batch of the
    latest event time at or before the time asked, a time past the TTL
    reads nil, and an old batch sent again changes nothing (its FEATURE.SET
    replies are 0).
 2. partition: node 3, cut off, takes batch 30; nodes 1 and 2 take batches
    25..29 afterwards (older event times, later arrival); after the heal
    every node holds batch 30.
 3. atomic batches: while node 1 takes batches 31..70 in order, a reader on
    node 2 never sees two entities of one MGET from different batches.
 4. sessions: a batch written on node 1 is read on node 3 through SESSION
    RESUME with the writer's token, at once.
"""
import random
import sys
import threading
import time

import redis

PORTS = [int(p) for p in sys.argv[1:4]]
VIEW = sys.argv[4]
rng = random.Random(int(sys.argv[5]))
print(f"feature_replay: seed {sys.argv[5]}")

ENTITIES = [f"{VIEW}:e{i}" for i in range(8)]
T0 = int(time.time() * 1000) - 120_000
TTL = 3_600_000


def node(i):
    return redis.Redis(port=PORTS[i], socket_timeout=10, decode_responses=True,
                       single_connection_client=True)


def ev(b):
    return T0 + b * 1000


def values(b, e):
    return {"clicks": f"{b}", "score": f"b{b}-{e}"}


def send_batch(r, b, entities=ENTITIES):
    p = r.pipeline(transaction=True)
    for e in entities:
        kv = values(b, e)
        p.execute_command("FEATURE.SET", e, ev(b), "clicks", kv["clicks"], "score", kv["score"])
    return p.execute()


def get(r, e, *opts):
    """FEATURE.GET e opts... FIELDS clicks score -> [clicks, score]."""
    return r.execute_command("FEATURE.GET", e, *opts, "FIELDS", "clicks", "score")


def wait_all(want_batch, entities=ENTITIES, secs=10, nodes=(0, 1, 2)):
    """Every node in nodes holds want_batch's values within secs: a read on
    a new connection carries no session, so it does not wait for writes
    made through other nodes; this does."""
    for i in nodes:
        r = node(i)
        deadline = time.time() + secs
        while True:
            got = [get(r, e) for e in entities]
            want = [[values(want_batch, e)["clicks"], values(want_batch, e)["score"]]
                    for e in entities]
            if got == want:
                break
            if time.time() > deadline:
                raise AssertionError(f"node {i + 1}: {got[:2]}..., want batch {want_batch}")
            time.sleep(0.05)


def partition(cut):
    node(cut).execute_command("DEBUG", "NET", "PARTITION", *[i + 1 for i in range(3) if i != cut])
    for i in range(3):
        if i != cut:
            node(i).execute_command("DEBUG", "NET", "PARTITION", cut + 1)


def heal():
    for i in range(3):
        node(i).execute_command("DEBUG", "NET", "HEAL")


# 1. Out-of-order arrival and replays.
order = list(range(1, 21))
rng.shuffle(order)
for k, b in enumerate(order):
    send_batch(node(k % 3), b)
old = [rng.randrange(1, 20) for _ in range(10)]
for k, b in enumerate(old):
    send_batch(node(k % 3), b)
wait_all(20)
print(f"ok - 20 batches in the order {order}, then {old} again: every node holds batch 20")

r = node(1)
hist = r.execute_command("FEATURE.HISTORY", ENTITIES[0], "clicks")
assert [h[0] for h in hist] == [ev(b) for b in (20, 19, 18, 17)], hist
assert [h[1] for h in hist] == ["20", "19", "18", "17"], hist
print("ok - the history keeps the latest 4 event times, newest first")

for i in range(3):
    r = node(i)
    for b in (17, 18, 19, 20):
        for asof in (ev(b), ev(b) + 999):
            got = get(r, ENTITIES[3], "ASOF", asof)
            assert got == [str(b), f"b{b}-{ENTITIES[3]}"], (i, b, asof, got)
    assert get(r, ENTITIES[3], "ASOF", ev(17) - 1) == [None, None]
    assert get(r, ENTITIES[3], "ASOF", ev(20) + TTL) == [None, None]
    assert get(r, ENTITIES[3], "ASOF", ev(20) + TTL - 1) == ["20", f"b20-{ENTITIES[3]}"]
print("ok - ASOF answers the batch of the latest event time at or before it, within the TTL")

assert send_batch(node(0), 12) == [0] * len(ENTITIES)
wait_all(20)
print("ok - an old batch sent again makes no field current (replies 0) and changes nothing")

# 2. A partition: the newest batch on the cut-off node, older ones after it.
partition(2)
try:
    assert send_batch(node(2), 30) == [2] * len(ENTITIES)
    for b in range(25, 30):
        send_batch(node(b % 2), b)
    # Nodes 1 and 2 exchange 25..29 and end at 29: 30 cannot reach them.
    wait_all(29, nodes=(0, 1))
finally:
    heal()
wait_all(30)
print("ok - batch 30 written alone on node 3, 25..29 on nodes 1-2 later: all hold 30")

# 3. Batches are atomic to readers on other nodes.
stop = threading.Event()
seen = []
errors = []


def reader():
    r = node(1)
    try:
        while not stop.is_set():
            reply = r.execute_command("FEATURE.MGET", len(ENTITIES), *ENTITIES, "WITHTIMES",
                                      "FIELDS", "clicks")
            times = {x[0][1] for x in reply}
            vals = {x[0][0] for x in reply}
            if len(times) != 1 or len(vals) != 1:
                errors.append(reply)
            seen.append(vals.pop())
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(repr(e))


t = threading.Thread(target=reader)
t.start()
w = node(0)
for b in range(31, 71):
    assert send_batch(w, b) == [2] * len(ENTITIES)
wait_all(70)
stop.set()
t.join()
assert not errors, errors[:3]
distinct = sorted(set(int(v) for v in seen))
assert len(seen) > 10 and len(distinct) > 1, (len(seen), distinct)
print(f"ok - {len(seen)} MGETs on node 2 while node 1 wrote 40 batches: "
      f"{len(distinct)} distinct batches seen, never a mix")

# 4. A session carries its writes to another node.
w = node(0)
send_batch(w, 71, ENTITIES[:1])
token = w.execute_command("SESSION", "TOKEN")
r = node(2)
r.execute_command("SESSION", "RESUME", token)
assert get(r, ENTITIES[0]) == ["71", f"b71-{ENTITIES[0]}"]
print("ok - a batch written on node 1 is read at once on node 3 through the session token")
