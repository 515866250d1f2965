#!/usr/bin/env python3
"""The workload of `make demo` (scripts/demo.sh starts the cluster first).

For --seconds on a running cluster with a strong `models` keyspace and a
causal `user` feature view, all through examples/python/model_service.py's
ConsistentModelService:

* a registry: two jobs (on different nodes) register versions of model
  "fraud" and promote them with MODEL.ALIAS ... IFVERSION; every third round
  they race one promotion, and exactly one must win;
* a feature pipeline writes batches (MULTI/EXEC) for 50 entities, some of
  them deliberately late (older event times) or sent out of order, which must
  make nothing current;
* a serving fleet: --fleet threads, each with its own service on its own
  node, calling predict(): the production model strongly, the features
  causally, plus --readers threads that read features only. A thread whose
  node dies moves to the next node and resumes its session there by token;
* at 35% of the run the Raft leader is killed with kill -9; at 65% it is
  restarted.

Then it checks what everyone saw and prints the report; it exits 1 if a
claim of the report does not hold.
"""

import argparse
import bisect
import collections
import os
import random
import subprocess
import sys
import threading
import time

import redis

sys.dont_write_bytecode = True  # no __pycache__ in examples/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
from model_service import ConsistentModelService  # noqa: E402

MODEL = "fraud"
ENTITIES = [f"u{i:03d}" for i in range(50)]
FIELDS = ("clicks_1h", "spend_7d", "country")
MOVE = (redis.ConnectionError, redis.TimeoutError)  # the node is gone: move on
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"  [{now():5.1f}s] {msg}", flush=True)


class Ambiguous(Exception):
    """A write that may or may not have been applied."""


def err_kind(e):
    if isinstance(e, redis.ResponseError):
        return str(e).split()[0] if str(e) else "ERR"
    return type(e).__name__


class Stats:
    """Per level: (start, done) of each success, and error kinds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.defaultdict(list)
        self.errors = collections.defaultdict(collections.Counter)

    def add(self, level, t0, t1):
        with self.lock:
            self.ok[level].append((t0, t1))

    def error(self, level, e):
        with self.lock:
            self.errors[level][err_kind(e)] += 1


class Cluster:
    def __init__(self, addrs, spectra, cdir):
        self.addrs, self.spectra, self.dir = addrs, spectra, cdir

    def info(self, i):
        """Node i's (1-based) CLUSTER INFO as a dict, or None."""
        host, port = self.addrs[i - 1].split(":")
        try:
            r = redis.Redis(host=host, port=int(port), socket_timeout=1,
                            decode_responses=True)
            text = r.execute_command("CLUSTER", "INFO")
            r.close()
        except redis.RedisError:
            return None
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def leader(self, among=None):
        for i in among or range(1, len(self.addrs) + 1):
            inf = self.info(i)
            if inf and inf.get("role") == "leader":
                return i, inf
        return None, None

    def run(self, *args):
        subprocess.run([self.spectra, "cluster", *args, "--dir", self.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Mover:
    """A ConsistentModelService pinned to one node that, when that node
    stops answering, moves to the next one and resumes its causal session
    there by token."""

    def __init__(self, addrs, first, **kw):
        self.addrs, self.i, self.kw = addrs, first, kw
        self.moves = 0
        self.svc = self._open(None)

    def _open(self, token):
        return TimedService(self.addrs[self.i], session_token=token, **self.kw)

    def move(self, fresh=False):
        token = None if fresh else self.svc.token
        self.svc.close()
        self.i = (self.i + 1) % len(self.addrs)
        self.moves += 1
        self.svc = self._open(token)


class TimedService(ConsistentModelService):
    """The example's service, with each call timed into a Stats."""

    def __init__(self, addr, stats=None, reads=None, **kw):
        super().__init__(addr, model=MODEL, timeout=10, **kw)
        self.stats, self.reads = stats, reads

    def _timed(self, level, fn, *a, **kw):
        t0 = now()
        try:
            r = fn(*a, **kw)
        except Exception as e:
            self.stats.error(level, e)
            raise
        t1 = now()
        self.stats.add(level, t0, t1)
        if self.reads is not None and level == "strong model reads" and r:
            self.reads.append((t0, t1, r["version"]))
        return r

    def get_model(self, *a, **kw):
        return self._timed("strong model reads", super().get_model, *a, **kw)

    def get_features(self, *a, **kw):
        return self._timed("causal feature reads", super().get_features, *a, **kw)

    def write_features(self, *a, **kw):
        return self._timed("feature batch writes", super().write_features, *a, **kw)

    def register(self, *a, **kw):
        return self._timed("registry writes", super().register, *a, **kw)

    def promote(self, *a, **kw):
        return self._timed("registry writes", super().promote, *a, **kw)


class Demo:
    def __init__(self, args):
        self.args = args
        self.addrs = args.nodes.split(",")
        self.cluster = Cluster(self.addrs, args.spectra, args.dir)
        self.stats = Stats()
        self.stop = threading.Event()
        self.failures = []
        self.lock = threading.Lock()
        self.strong_reads = []  # (start, done, version) of every fleet model read
        self.promoted = []  # (acknowledged at, version)
        self.races = []  # report lines
        self.late_times = set()  # event times of late / out-of-order batches
        self.batches = collections.Counter()
        self.fleet_moves = 0
        self.feature_reads_checked = 0
        self.kill = {}
        self.t_init = None
        self.reader_done = []  # when each feature-only read was answered

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        log(f"FAIL: {what}")

    # The registry: two jobs on two nodes.
    def registry(self):
        jobs = {"A": Mover(self.addrs, 1, stats=self.stats),
                "B": Mover(self.addrs, 3, stats=self.stats)}
        node = {j: lambda j=j: jobs[j].i + 1 for j in jobs}
        seq = 0

        def call(job, fn, write=False):
            """fn(svc) until it is answered: TRYAGAIN (not executed) is
            waited out, a dead node is left for the next one. A write that
            may or may not have been applied (UNKNOWN, or the connection lost
            once it was sent) raises Ambiguous: the caller reads to find out."""
            for _ in range(200):
                try:
                    return fn(jobs[job].svc)
                except MOVE:
                    jobs[job].move()
                    if write:
                        raise Ambiguous()
                except redis.ResponseError as e:
                    if write and str(e).startswith("UNKNOWN"):
                        raise Ambiguous()
                    if not str(e).startswith("TRYAGAIN"):
                        raise
                time.sleep(0.1)
            raise RuntimeError("the registry got no answer for 20 s")

        def current(job):
            m = call(job, lambda s: s.get_model(MODEL))
            return m["version"] if m else None

        def register(job):
            nonlocal seq
            seq += 1
            uri = f"s3://models/{MODEL}/build-{seq}"
            while True:
                try:
                    return call(job, lambda s: s.register(MODEL, uri, meta={"job": job}, schema=1),
                                write=True)
                except Ambiguous:  # did it land? The uri says.
                    for rec in call(job, lambda s: s.registry.execute_command(
                            "MODEL.VERSIONS", f"models:{MODEL}")):
                        rec = dict(zip(rec[0::2], rec[1::2]))
                        if rec["uri"] == uri:
                            return rec["version"]

        def promote(job, v, cur):
            while True:
                try:
                    won = call(job, lambda s: s.promote(MODEL, v, cur), write=True)
                    break
                except Ambiguous:  # the alias says: ours, unchanged (retry), or another's
                    now_v = current(job)
                    if now_v != cur:
                        won = now_v == v
                        break
            if won:
                with self.lock:
                    self.promoted.append((now(), v))
            return won

        v = register("A")
        if promote("A", v, None):
            log(f"registry: job A registered v{v} and promoted it (IFNONE)")
        else:
            self.fail(f"the first promotion (IFNONE) of v{v} did not win (a used cluster?)")
        rnd = 0
        while not self.stop.wait(self.args.seconds / 20):
            rnd += 1
            if rnd % 3:
                job = "AB"[rnd % 2]
                v, cur = register(job), current(job)
                won = promote(job, v, cur)
                log(f"registry: job {job} (node {node[job]()}) registered v{v}, promoted "
                    f"v{cur} -> v{v}: {'ok' if won else 'refused'}")
                if not won:
                    self.fail(f"an uncontested promotion v{cur} -> v{v} was refused")
                continue
            va, vb = register("A"), register("B")
            cur = current("A")
            result, barrier = {}, threading.Barrier(2)

            def race(job, v):
                barrier.wait()
                result[job] = promote(job, v, cur)

            ts = [threading.Thread(target=race, args=("A", va)),
                  threading.Thread(target=race, args=("B", vb))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            prod = current("A")
            winners = [j for j in "AB" if result.get(j)]
            line = (f"from v{cur}: job A (node {node['A']()}) v{va} "
                    f"{'WON' if result.get('A') else 'lost'}, job B (node {node['B']()}) v{vb} "
                    f"{'WON' if result.get('B') else 'lost'}; production now v{prod}")
            self.races.append(line)
            log(f"registry race {line}")
            if len(winners) != 1 or prod != {"A": va, "B": vb}[winners[0]]:
                self.fail(f"promotion race: {line}")
        for m in jobs.values():
            m.svc.close()

    # The feature pipeline.
    def pipeline(self):
        w = Mover(self.addrs, 0, stats=self.stats)
        rng = random.Random(7)
        last = 0

        def values(late=False):
            if late:  # recognisable: a late value must never be current
                return {"clicks_1h": -1, "spend_7d": "-1.0", "country": "late"}
            return {"clicks_1h": rng.randint(0, 40), "spend_7d": f"{rng.uniform(0, 900):.2f}",
                    "country": rng.choice(["se", "no", "de", "fr", "us"])}

        def event_ms():
            nonlocal last
            last = max(int(time.time() * 1000), last + 1)
            return last

        def write(batch, expect):
            """Writes a batch; retrying is safe (a replay is harmless), but
            a retried batch's counts can read 0: not judged then."""
            tries, t_first = 0, None
            while True:
                tries += 1
                try:
                    counts = w.svc.write_features(batch)
                    break
                except MOVE:
                    w.move()
                except redis.ResponseError as e:
                    if not str(e).startswith(("TRYAGAIN", "UNKNOWN")):
                        raise
                    t_first = t_first or now()
                    if now() - t_first > 3:
                        # This node cannot reach what the session has seen (writes
                        # the dead node took but had not yet sent): the pipeline
                        # needs only event-time order, so it starts a new session.
                        log("feature pipeline: a new session on the next node")
                        w.move(fresh=True)
                        t_first = None
                if tries > 100:
                    raise RuntimeError("the feature pipeline got no answer")
                time.sleep(0.1)
            if expect is not None and (tries == 1 or expect == 0) and counts != [expect] * len(batch):
                self.fail(f"a batch made {counts} fields current, expected {expect} each")
            return counts

        t_init = self.t_init = event_ms()
        write([(e, t_init, values()) for e in ENTITIES], len(FIELDS))
        self.batches["initial"] += 1
        k = 0
        while not self.stop.wait(0.3):
            k += 1
            ents = rng.sample(ENTITIES, 10)
            if k % 5 == 0:  # late: older than anything held
                t = t_init - rng.randint(1_000, 60_000)
                self.late_times.add(t)
                write([(e, t, values(late=True)) for e in ents], 0)
                self.batches["late"] += 1
            elif k % 7 == 0:  # out of order: the newer batch arrives first
                t_old, t_new = event_ms(), event_ms()
                self.late_times.add(t_old)
                write([(e, t_new, values()) for e in ents], len(FIELDS))
                write([(e, t_old, values(late=True)) for e in ents], 0)
                self.batches["on time"] += 1
                self.batches["out of order"] += 1
            else:
                write([(e, event_ms(), values()) for e in ents], len(FIELDS))
                self.batches["on time"] += 1
        w.svc.close()

    # The serving fleet, and feature-only readers.
    def check_features(self, who, entity, feats, seen):
        """Causal claims: no late value is ever current; a session's event
        times only move forward."""
        for f, (v, t) in feats.items():
            if t in self.late_times or v in ("-1", "-1.0", "late"):
                self.fail(f"{who} was served a late value as current: {entity}.{f} at {t}")
            if t < seen.get((entity, f), 0):
                self.fail(f"{who}: {entity}.{f} went back in time ({seen[(entity, f)]} -> {t})")
            seen[(entity, f)] = t

    def server(self, n):
        m = Mover(self.addrs, n % len(self.addrs), stats=self.stats, reads=self.strong_reads)
        rng = random.Random(n)
        last_version = 0
        seen = {}  # (entity, field) -> latest event time this session saw
        checked = 0
        while not self.stop.is_set():
            entity = rng.choice(ENTITIES)
            try:
                p = m.svc.predict(entity)
            except MOVE:
                m.move()
                continue
            except (redis.ResponseError, LookupError):
                time.sleep(0.05)
                continue
            if p.version < last_version:
                self.fail(f"server {n} saw production go back: v{last_version} -> v{p.version}")
            last_version = max(last_version, p.version)
            self.check_features(f"server {n}", entity,
                                {f: (p.features[f], t) for f, t in p.event_times.items()}, seen)
            checked += 1
            time.sleep(0.003)
        with self.lock:
            self.fleet_moves += m.moves
            self.feature_reads_checked += checked
        m.svc.close()

    def reader(self, n):
        """A job that reads features only (say, monitoring feature drift):
        causal reads need no leader, so it should not notice the kill."""
        m = Mover(self.addrs, n % len(self.addrs), stats=self.stats)
        rng = random.Random(100 + n)
        seen = {}
        while not self.stop.is_set():
            entity = rng.choice(ENTITIES)
            try:
                feats = m.svc.get_features(entity)
            except MOVE:
                m.move()
                continue
            except redis.ResponseError:
                time.sleep(0.05)
                continue
            with self.lock:
                self.reader_done.append(now())
            self.check_features(f"reader {n}", entity, feats, seen)
            time.sleep(0.003)
        with self.lock:
            self.fleet_moves += m.moves
        m.svc.close()

    # The kill.
    def killer(self):
        if self.stop.wait(self.args.seconds * 0.35):
            return
        victim, inf = self.cluster.leader()
        if victim is None:
            self.fail("no leader to kill")
            return
        t_kill = now()
        self.cluster.run("stop", "--id", str(victim), "--kill")
        self.kill.update(node=victim, t=t_kill, term=inf.get("term"))
        log(f"kill -9 node {victim} (the Raft leader, term {inf.get('term')})")
        others = [i for i in range(1, len(self.addrs) + 1) if i != victim]
        while not self.stop.is_set():
            new, _ = self.cluster.leader(others)
            if new:
                self.kill.update(new=new, elected=now() - t_kill)
                log(f"node {new} is the new leader, {now() - t_kill:.2f} s after the kill")
                break
            time.sleep(0.05)
        if self.stop.wait(max(0.0, self.args.seconds * 0.65 - now())):
            return
        t_start = now()
        self.cluster.run("start", "--id", str(victim))
        log(f"restarted node {victim}")
        self.kill["t_restart"] = t_start
        while not self.stop.is_set() and now() - t_start < 20:
            _, linf = self.cluster.leader(others)
            vinf = self.cluster.info(victim)
            if linf and vinf and int(vinf["applied_index"]) >= int(linf["commit_index"]):
                self.kill["caught_up"] = now() - t_start
                log(f"node {victim} caught up with the leader's log "
                    f"({now() - t_start:.2f} s after the restart)")
                return
            time.sleep(0.05)

    def guarded(self, fn, *args):
        def body():
            try:
                fn(*args)
            except Exception as e:  # a claim that could not even be tested
                self.fail(f"{fn.__name__}: {type(e).__name__}: {e}")
                self.stop.set()
        return threading.Thread(target=body, name=fn.__name__)

    def run(self):
        a = self.args
        print(f"== {a.seconds:.0f} s: a registry (2 jobs), a feature pipeline, {a.fleet} serving "
              f"threads and {a.readers} feature-only readers over {len(self.addrs)} nodes; "
              "the leader killed at "
              f"{a.seconds * 0.35:.0f} s, back at {a.seconds * 0.65:.0f} s", flush=True)
        threads = [self.guarded(self.registry), self.guarded(self.pipeline),
                   self.guarded(self.killer)]
        threads[0].start()
        threads[1].start()
        while not self.promoted and now() < 10:  # the fleet needs a production model
            time.sleep(0.05)
        threads += [self.guarded(self.server, n) for n in range(a.fleet)]
        threads += [self.guarded(self.reader, n) for n in range(a.readers)]
        for t in threads[2:]:
            t.start()
        self.stop.wait(max(0.0, a.seconds - now()))
        self.stop.set()
        for t in threads:
            t.join(30)
            if t.is_alive():
                self.fail(f"thread {t.name} did not stop")
        self.final_checks()
        self.report()
        return 1 if self.failures else 0

    def final_checks(self):
        # Linearizable model reads: a read that began after another read (or
        # a promotion) of version v was answered must see v or newer.
        first = {}
        for t1, v in self.promoted:
            first[v] = min(first.get(v, t1), t1)
        for _, t1, v in self.strong_reads:
            first[v] = min(first.get(v, t1), t1)
        events = sorted((t, v) for v, t in first.items())
        times = [t for t, _ in events]
        best, run_max = [], 0
        for _, v in events:
            run_max = max(run_max, v)
            best.append(run_max)
        stale = 0
        for t0, _, v in self.strong_reads:
            i = bisect.bisect_left(times, t0) - 1
            if i >= 0 and best[i] > v:
                stale += 1
        self.stale_model_reads = stale
        if stale:
            self.fail(f"{stale} model reads saw an older version than one already seen")
        # Every node ends with the same production model and features.
        self.converged = None
        t_end = now()
        probe = [redis.Redis(*addr.split(":"), decode_responses=True, socket_timeout=2)
                 for addr in self.addrs]
        while now() - t_end < 15:
            try:
                views = []
                for r in probe:
                    m = r.execute_command("LEVEL", "stale", "MODEL.GET", f"models:{MODEL}",
                                          "ALIAS", "production")
                    feats = [r.execute_command("LEVEL", "local", "FEATURE.GET", f"user:{e}",
                                               "WITHTIMES") for e in ENTITIES]
                    views.append((m[1], feats))
                if all(v == views[0] for v in views):
                    self.converged = (now() - t_end, views[0][0])
                    break
            except redis.RedisError:
                pass
            time.sleep(0.1)
        if not self.converged:
            self.fail("the nodes did not agree on the model and the features within 15 s")
        elif self.promoted and self.converged[1] != max(v for _, v in self.promoted):
            self.fail(f"the nodes hold production v{self.converged[1]}, not the last promoted")
        # A late batch is still in the history: a point-in-time read finds it.
        svc = ConsistentModelService(self.addrs[-1])
        t_late = max((t for t in self.late_times if t < (self.t_init or 0)), default=None)
        self.asof_ok = None
        if t_late:
            got = {}
            for e in ENTITIES:
                f = svc.get_features(e, timestamp=t_late)
                if f.get("country", (None, 0))[1] == t_late:
                    got = f
                    break
            self.asof_ok = got.get("country", (None,))[0] == "late"
            if not self.asof_ok:
                self.fail(f"an ASOF read at a late batch's time ({t_late}) did not find it")
        svc.close()
        for r in probe:
            r.close()

    def report(self):
        a, s = self.args, self.stats
        print()
        print("== report")
        print(f"  {'level':<22}{'ops':>8}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
              "  errors by kind")
        for level in ("strong model reads", "causal feature reads", "registry writes",
                      "feature batch writes"):
            lat = sorted((t1 - t0) * 1000 for t0, t1 in s.ok[level])
            ne = sum(s.errors[level].values())
            pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: 0)
            kinds = ", ".join(f"{k} {n}" for k, n in s.errors[level].most_common()) or "-"
            print(f"  {level:<22}{len(lat):>8}{ne:>8}{pct(0.5):>9.2f}{pct(0.99):>9.2f}"
                  f"{(lat[-1] if lat else 0):>9.1f}  {kinds}")
        if not s.ok["strong model reads"] or not s.ok["causal feature reads"]:
            self.fail("the fleet made no reads")
        order = []
        for _, _, v in sorted(self.strong_reads, key=lambda r: r[1]):
            if not order or v > order[-1]:
                order.append(v)
        print()
        print(f"  strong: the fleet ({a.fleet} threads, {len(self.strong_reads)} reads) saw "
              f"production {' -> '.join(f'v{v}' for v in order)}")
        print(f"          no thread ever saw it go back, and no read saw a version older than "
              f"one already read or promoted: {self.stale_model_reads} stale of "
              f"{len(self.strong_reads)}")
        print(f"          {len(self.promoted)} promotions acknowledged; {len(self.races)} races, "
              f"each won by exactly one job:")
        for line in self.races:
            print(f"            {line}")
        b = self.batches
        print(f"  causal: {b['initial'] + b['on time']} feature batches on time, {b['late']} late "
              f"and {b['out of order']} sent out of order: every late FEATURE.SET answered 0 "
              "(nothing overwritten)")
        print(f"          {self.feature_reads_checked} predictions checked: no late value ever "
              "served as current; every session's event times only moved forward "
              f"({self.fleet_moves} session{'s' if self.fleet_moves != 1 else ''} moved to another "
              "node by token)")
        if self.asof_ok:
            print("          a point-in-time read (ASOF) at a late batch's event time still finds it")
        k = self.kill
        if k:
            def longest_gap(done):
                done = sorted(done)
                return max((b2 - b1 for b1, b2 in zip(done, done[1:])
                            if b2 > k["t"] - 1 and b1 < k["t"] + 10), default=0)

            paused_strong = longest_gap(t1 for _, t1 in s.ok["strong model reads"])
            paused_causal = longest_gap(self.reader_done)
            print(f"  kill:   node {k['node']} was the Raft leader (term {k['term']}) and was "
                  f"killed -9 at {k['t']:.1f} s; node {k.get('new', '?')} was elected "
                  f"{k.get('elected', float('nan')):.2f} s later")
            print(f"          longest time no read was answered around the kill: strong (model) "
                  f"{paused_strong:.2f} s (the election; predictions wait for it), causal "
                  f"(feature-only readers) {paused_causal:.2f} s")
            if "caught_up" in k:
                print(f"          restarted at {k['t_restart']:.1f} s; caught up with the "
                      f"leader's log in {k['caught_up']:.2f} s")
            else:
                self.fail(f"node {k['node']} did not catch up after its restart")
        if self.converged:
            print(f"  end:    all {len(self.addrs)} nodes agree: production v{self.converged[1]}, "
                  f"the same features for all {len(ENTITIES)} entities "
                  f"({self.converged[0]:.2f} s after the load stopped)")
        print(f"  dashboard: {a.dashboard}")
        if self.failures:
            print(f"\nDEMO FAILED: {len(self.failures)} claim(s) did not hold:")
            for f in self.failures:
                print(f"  - {f}")


def main():
    ap = argparse.ArgumentParser(description="the make demo workload")
    ap.add_argument("--nodes", required=True, help="host:port of every node, node 1 first")
    ap.add_argument("--dir", required=True, help="the cluster's directory")
    ap.add_argument("--spectra", default="bin/spectra")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--fleet", type=int, default=6, help="serving threads (predict)")
    ap.add_argument("--readers", type=int, default=2, help="feature-only reader threads")
    ap.add_argument("--dashboard", default="")
    return Demo(ap.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
