#!/usr/bin/env python3
"""ConsistentModelService: serve predictions from a spectra cluster.

A prediction needs two things with different consistency needs:

* the model to use: the registry's "production" alias, read *strong*
  (linearizable) so no two servers ever disagree on which version is in
  production, and no server ever goes back to an older one;
* the entity's features: read *causal* from a feature view, fast and
  available on any node, with the session guarantees (read-your-writes,
  monotonic reads) carried from node to node by a session token.

spectra gives both on one cluster: a strong keyspace holds the models
(MODEL.* commands), a causal keyspace created with FEATURES yes holds
the features (FEATURE.* commands). Set them up once:

    KEYSPACE CREATE models MODE strong
    KEYSPACE CREATE user MODE causal FEATURES yes

Then:

    svc = ConsistentModelService("127.0.0.1:7379")
    v = svc.register("fraud", "s3://models/fraud/7", meta={"auc": 0.91})
    svc.promote("fraud", v, expected_version=None)      # first production
    svc.write_features([("42", now_ms, {"clicks_1h": 3, "country": "se"})])
    p = svc.predict("42")     # p.version, p.features, p.event_times, p.score

Needs redis-py (Debian: python3-redis). `--check HOST:PORT[,HOST:PORT...]`
runs this file end to end against a running cluster and exits non-zero on
any failure:

    /usr/bin/python3 examples/python/model_service.py --check 127.0.0.1:7379,127.0.0.1:7380
"""

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass

import redis


def _host_port(addr):
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


def _pairs(flat):
    """A RESP2 flat reply [k1, v1, k2, v2, ...] as a dict."""
    return dict(zip(flat[0::2], flat[1::2]))


@dataclass(frozen=True)
class Prediction:
    entity: str
    model: str
    version: int  # the model version used (the alias's, read linearizably)
    uri: str
    schema: int  # the feature-schema version the alias names (0: none)
    features: dict  # field -> value, as read (causal)
    event_times: dict  # field -> event time (Unix ms) of each value used
    score: float


class ConsistentModelService:
    """Features at causal, the model at strong, from one spectra cluster.

    features_addr / registry_addr: "host:port" of any node (the registry
    defaults to the same node). Each service holds two clients:

    * `self.features`: exactly one connection (max_connections=1), which is
      one causal session: every connection it (re)opens says CONSISTENCY
      causal and resumes the session's last token, so a node restart does not
      lose read-your-writes. `self.token` is that token after every call:
      hand it to a service on another node (session_token=...) to carry the
      session there.
    * `self.registry`: an ordinary pool at linearizable, the strong default,
      said explicitly on every connection so a keyspace's READ default
      cannot weaken it.

    One service is for one thread at a time; give each thread its own.
    """

    def __init__(self, features_addr, registry_addr=None, *, view="user",
                 models="models", model="fraud", session_token=None,
                 timeout=5.0):
        self.view, self.models, self.model = view, models, model
        self.token = session_token
        fhost, fport = _host_port(features_addr)
        rhost, rport = _host_port(registry_addr or features_addr)
        self.features = redis.Redis(
            host=fhost, port=fport, decode_responses=True, max_connections=1,
            socket_timeout=timeout, redis_connect_func=self._causal_session)
        self.registry = redis.Redis(
            host=rhost, port=rport, decode_responses=True,
            socket_timeout=timeout, redis_connect_func=self._linearizable)

    # Connection set-up: the level is a per-connection setting.
    def _causal_session(self, conn):
        conn.on_connect()
        conn.send_command("CONSISTENCY", "causal")
        conn.read_response()
        if self.token:
            conn.send_command("SESSION", "RESUME", self.token)
            conn.read_response()

    @staticmethod
    def _linearizable(conn):
        conn.on_connect()
        conn.send_command("CONSISTENCY", "linearizable")
        conn.read_response()

    def close(self):
        self.features.close()
        self.registry.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Features (causal).
    def get_features(self, entity, timestamp=None):
        """{field: (value, event_ms)} of the entity's features.

        timestamp (Unix ms): point in time, the values as they were then
        (FEATURE.GET ... ASOF), for training sets without leakage. Waits, if
        needed, until this node holds everything the session has seen.
        """
        args = ["FEATURE.GET", f"{self.view}:{entity}"]
        if timestamp is not None:
            args += ["ASOF", int(timestamp)]
        args.append("WITHTIMES")
        pipe = self.features.pipeline(transaction=False)  # one round trip
        pipe.execute_command(*args)
        pipe.execute_command("SESSION", "TOKEN")
        reply, self.token = pipe.execute()
        return {f: (v, int(t)) for f, (v, t) in _pairs(reply).items()}

    def write_features(self, batch):
        """Write [(entity, event_ms, {field: value}), ...] as one batch.

        MULTI/EXEC: every node applies the whole batch at once or not at all.
        Returns, per entity, how many fields this write made current: a value
        whose event time is older than the one held is kept in the history
        (ASOF reads find it) but never overwrites the newer one, so late and
        replayed batches are harmless.
        """
        pipe = self.features.pipeline(transaction=True)
        for entity, event_ms, values in batch:
            fields = [x for kv in values.items() for x in kv]
            pipe.execute_command("FEATURE.SET", f"{self.view}:{entity}",
                                 int(event_ms), *fields)
        counts = pipe.execute()
        self.token = self.features.execute_command("SESSION", "TOKEN")
        return counts

    # Models (strong).
    def get_model(self, name=None, alias="production"):
        """The version an alias points at, as a dict (version, uri, meta,
        schema, registered_ms, alias), or None. Linearizable: never older
        than a promotion acknowledged before this call began."""
        reply = self.registry.execute_command(
            "MODEL.GET", f"{self.models}:{name or self.model}", "ALIAS", alias)
        return _pairs(reply) if reply else None

    def register(self, name, uri, meta=None, schema=None):
        """Register a model's next version; returns its number (1, 2, ...)."""
        args = ["MODEL.REGISTER", f"{self.models}:{name}", uri]
        if meta is not None:
            args += ["META", meta if isinstance(meta, str) else json.dumps(meta)]
        if schema:
            args += ["SCHEMA", int(schema)]
        return self.registry.execute_command(*args)

    def promote(self, name, version, expected_version, alias="production"):
        """Point alias at version if it now points at expected_version (None:
        if it does not exist yet). True if this call moved it; False if
        someone else got there first (nothing changed)."""
        cond = (["IFNONE"] if expected_version is None
                else ["IFVERSION", int(expected_version)])
        return self.registry.execute_command(
            "MODEL.ALIAS", f"{self.models}:{name}", alias, int(version),
            *cond) == 1

    # Both.
    def predict(self, entity, model=None):
        """Score an entity with the production model and its features, and
        say exactly what was used."""
        name = model or self.model
        m = self.get_model(name)
        if m is None:
            raise LookupError(f"model {name!r} has no production version")
        feats = self.get_features(entity)
        values = {f: v for f, (v, _) in feats.items()}
        return Prediction(
            entity=entity, model=name, version=m["version"], uri=m["uri"],
            schema=m["schema"], features=values,
            event_times={f: t for f, (_, t) in feats.items()},
            score=_toy_score(m["version"], values))


def _toy_score(version, values):
    """Stands in for loading the model from its uri and running it."""
    x = sum(float(v) for v in values.values()
            if v.replace(".", "", 1).lstrip("-").isdigit())
    return round(x * (1 + version / 10), 3)


# --check: the example end to end against a running cluster.

def check(addrs):
    failures = []

    def ok(cond, what):
        print(("ok - " if cond else "FAIL: ") + what, flush=True)
        if not cond:
            failures.append(what)

    nodes = [addrs[i % len(addrs)] for i in range(3)]  # three, reused if fewer
    run = f"chk{os.getpid()}x{int(time.time() * 1000) % 10**8}"
    name = f"{run}-fraud"
    admin = redis.Redis(*_host_port(nodes[0]), decode_responses=True)
    for ks, mode in (("models", ["MODE", "strong"]),
                     ("user", ["MODE", "causal", "FEATURES", "yes"])):
        try:
            admin.execute_command("KEYSPACE", "CREATE", ks, *mode)
        except redis.ResponseError as e:
            if "exists" not in str(e):
                raise
    a = ConsistentModelService(nodes[0], model=name)
    b = ConsistentModelService(nodes[1], model=name)

    # Registry: versions are dense, every node agrees at once.
    v1 = a.register(name, f"s3://models/{name}/1", meta={"auc": 0.90}, schema=1)
    v2 = b.register(name, f"s3://models/{name}/2", meta={"auc": 0.92}, schema=1)
    ok((v1, v2) == (1, 2), f"register on two nodes: versions {v1}, {v2}")
    ok(b.get_model(name) is None, "no production alias before a promotion")
    ok(a.promote(name, v1, None), "first promotion (IFNONE) wins")
    ok(not b.promote(name, v2, None), "a second IFNONE promotion loses")
    c = ConsistentModelService(nodes[2], model=name)
    m = c.get_model(name)
    ok(m is not None and m["version"] == 1 and json.loads(m["meta"]) == {"auc": 0.9}
       and m["schema"] == 1 and m["alias"] == "production",
       f"a third node reads production = v1 at once (linearizable): {m}")

    # Two jobs on two nodes race one promotion: exactly one wins.
    v3 = c.register(name, f"s3://models/{name}/3")
    won, barrier = {}, threading.Barrier(2)

    def race(svc, version):
        barrier.wait()
        won[version] = svc.promote(name, version, expected_version=1)

    jobs = [threading.Thread(target=race, args=(a, v2)),
            threading.Thread(target=race, args=(b, v3))]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    winners = [v for v, w in won.items() if w]
    now_prod = c.get_model(name)["version"]
    ok(len(winners) == 1 and now_prod == winners[0],
       f"promotion race v2 vs v3 from 1: winners {winners}, production now v{now_prod}")
    ok(not a.promote(name, v1, expected_version=1)
       and c.get_model(name)["version"] == now_prod,
       "a promotion with a stale IFVERSION changes nothing")

    # Features: a batch written on one node, read on another via the token.
    now = int(time.time() * 1000)
    t_old, t_new = now - 60_000, now - 1_000
    e1, e2 = f"{run}-1", f"{run}-2"
    counts = a.write_features([(e1, t_new, {"clicks_1h": 7, "country": "se"}),
                               (e2, t_new, {"clicks_1h": 2})])
    ok(counts == [2, 1], f"write_features batch (MULTI/EXEC): {counts}")
    b2 = ConsistentModelService(nodes[1], model=name, session_token=a.token)
    f = b2.get_features(e1)
    ok(f == {"clicks_1h": ("7", t_new), "country": ("se", t_new)},
       f"another node, session resumed by token, reads its writes: {f}")
    late = b2.write_features([(e1, t_old, {"clicks_1h": 1, "country": "no"})])
    ok(late == [0], f"a late batch (older event time) makes nothing current: {late}")
    f = ConsistentModelService(nodes[2], session_token=b2.token).get_features(e1)
    ok(f["clicks_1h"] == ("7", t_new),
       f"the newer value stands on a third node: {f['clicks_1h']}")
    f = b2.get_features(e1, timestamp=t_old)
    ok(f == {"clicks_1h": ("1", t_old), "country": ("no", t_old)},
       f"a point-in-time read (ASOF) finds the late values: {f}")
    ok(b2.get_features(e1, timestamp=t_old - 1) == {},
       "ASOF before any event time: no features")

    # predict: the model strongly, the features causally, and what it used.
    c2 = ConsistentModelService(nodes[2], model=name, session_token=b2.token)
    p = c2.predict(e1)
    ok(p.version == now_prod and p.features == {"clicks_1h": "7", "country": "se"}
       and p.event_times == {"clicks_1h": t_new, "country": t_new}
       and p.uri == f"s3://models/{name}/{now_prod}",
       f"predict uses production v{p.version} and features at {t_new}: {p}")

    # Errors are clear, never silent.
    try:
        c.registry.execute_command("MODEL.GET", f"user:{e1}")
        ok(False, "MODEL.* on a causal keyspace is refused")
    except redis.ResponseError as e:
        ok("need a strong keyspace" in str(e), f"MODEL.* on a causal keyspace: {e}")
    try:
        a.promote(name, 99, expected_version=now_prod)
        ok(False, "promoting a version that does not exist is refused")
    except redis.ResponseError as e:
        ok("has no version 99" in str(e), f"promoting a missing version: {e}")

    for s in (a, b, c, b2, c2):
        s.close()
    if failures:
        print(f"model_service.py --check: {len(failures)} failed", file=sys.stderr)
        return 1
    print("model_service.py --check: all passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", metavar="HOST:PORT[,HOST:PORT...]", required=True,
                    help="run the example end to end against these nodes")
    args = ap.parse_args()
    try:
        return check([a for a in args.check.split(",") if a])
    except (redis.RedisError, OSError, LookupError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
