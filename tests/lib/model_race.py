#!/usr/bin/python3
"""model_race: the model registry's promotion race, recorded as a history.

Usage: model_race.py --ports P1,P2,P3 --dir CLUSTER_DIR --spectra BIN
                     --rounds N --kill-round K --out HISTORY

On a 3-node cluster (node i listens on the i-th port; BIN is the spectra
CLI, for `cluster stop --kill` and `cluster start` of the nodes in
CLUSTER_DIR):

  - A reader per node polls `MODEL.GET m ALIAS production` (linearizable,
    the default level) on its own connection from start to end.
  - The alias is first set with `MODEL.ALIAS m production 1 IFNONE`.
  - Then N rounds: two promoters, on two different nodes, each register a
    version of their own (MODEL.REGISTER m ...) and, released together,
    race `MODEL.ALIAS m production <their version> IFVERSION <current>`.
    A promoter whose attempt gets TRYAGAIN (nothing done), UNKNOWN or a
    lost connection tries again (on a live node) until it gets 1 or 0.
    In round K one promoter talks to the leader, the other to a follower;
    the followers' frames to the leader are delayed 300 ms (DEBUG NET
    FAULTS) and the leader is killed -9 100 ms after both sent their
    attempt, so the attempts are in the logs but not committed, or still
    on their way; the faults are healed and the node started again once
    the round is over.
  - After each round a linearizable read learns the alias's version.

Every attempt and every read goes to HISTORY as JSON lines in the format
of src/check/history.h, on key "m/production", values the version numbers
as strings: promotions as "cas" (the IFNONE one with expected null),
reads as "read"; invoke/complete in microseconds of one monotonic clock;
result ok (1 / a value), fail (0 / TRYAGAIN), info (UNKNOWN, connection
lost). `spectra check HISTORY` judges it.

It checks directly, exiting 1 with a message on the first failure:
  - every round has exactly one winner: the alias moved to one of the two
    candidates; at most one attempt answered 1, and that one is the
    winner's; in a round where both promoters got an answer at once (no
    retry: every round but the kill's, unless an election came between)
    one answered 1 and the other 0;
  - no reader ever saw the alias go back to an older version: each
    reader's values never decrease, and no read returned a version older
    than one a read (on any node) had returned before it was called.
Prints one summary line.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

KEY = "m"
HKEY = "m/production"


def now_us():
    return time.monotonic_ns() // 1000


class RespError(Exception):
    pass


class Conn:
    """One RESP2 connection; call() sends a command and returns its reply
    (bytes, int, list, None), or raises RespError for an error reply and
    OSError / ConnectionError for a lost connection."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def _reply(self):
        ln = self._line()
        t, rest = ln[:1], ln[1:]
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b"+":
            return rest
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise ConnectionError("bad reply %r" % ln)

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        r = self._reply()
        if isinstance(r, RespError):
            raise r
        return r


class Cluster:
    def __init__(self, ports, cdir, spectra):
        self.ports = ports
        self.dir = cdir
        self.spectra = spectra
        self.down = set()  # node ids killed and not started again

    def port(self, node):
        return self.ports[node - 1]

    def nodes(self):
        return range(1, len(self.ports) + 1)

    def live(self):
        return [n for n in self.nodes() if n not in self.down]

    def role(self, node):
        try:
            c = Conn(self.port(node), timeout=2)
            try:
                info = c.call("CLUSTER", "INFO").decode()
            finally:
                c.close()
        except (OSError, ConnectionError, RespError):
            return None
        for ln in info.splitlines():
            if ln.startswith("role:"):
                return ln[5:].strip()
        return None

    def leader(self, secs=15):
        end = time.time() + secs
        while time.time() < end:
            for n in self.live():
                if self.role(n) == "leader":
                    return n
            time.sleep(0.05)
        fail("no leader within %ds" % secs)

    def run(self, *args):
        r = subprocess.run([self.spectra, "cluster"] + list(args) + ["--dir", self.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            fail("spectra cluster %s: %s" % (" ".join(args), r.stdout.decode(errors="replace")))

    def kill(self, node):
        """kill -9 at once (the CLI's stop then only tidies up)."""
        self.down.add(node)
        with open("%s/node-%d/spectrad.pid" % (self.dir, node)) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
        self.run("stop", "--id", str(node), "--kill")

    def admin(self, node, *args):
        c = Conn(self.port(node))
        try:
            r = c.call(*args)
        finally:
            c.close()
        if r != b"OK":
            fail("%s on node %d: %r" % (" ".join(map(str, args)), node, r))

    def start(self, node):
        self.run("start", "--id", str(node))
        self.down.discard(node)


def fail(msg):
    print("FAIL: model_race: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def add(self, op):
        with self.lock:
            self.ops.append(op)


def version_of(reply):
    """The version in a MODEL.GET reply (a flat array in RESP2), or None."""
    if reply is None:
        return None
    if not isinstance(reply, list) or len(reply) < 2 or reply[0] != b"version":
        fail("MODEL.GET answered %r" % (reply,))
    return reply[1]


class Reader(threading.Thread):
    """Polls the alias on one node; records every read."""

    def __init__(self, cluster, node, process, hist, stop):
        super().__init__(daemon=True)
        self.cluster, self.node, self.process = cluster, node, process
        self.hist, self.stop = hist, stop
        self.values = []  # (invoke, complete, version) of ok reads
        self.error = None

    def run(self):
        try:
            self.loop()
        except BaseException as e:  # reported by the main thread
            self.error = "reader on node %d: %r" % (self.node, e)

    def loop(self):
        conn = None
        while not self.stop.is_set():
            if conn is None:
                try:
                    conn = Conn(self.cluster.port(self.node))
                except OSError:
                    time.sleep(0.1)
                    continue
            op = {"process": self.process, "op": "read", "key": HKEY, "invoke": now_us()}
            try:
                v = version_of(conn.call("MODEL.GET", KEY, "ALIAS", "production"))
                op["complete"] = now_us()
                op["value"] = None if v is None else str(v)
                op["result"] = "ok"
                self.values.append((op["invoke"], op["complete"], v))
            except RespError as e:
                op["complete"] = now_us()
                if not str(e).startswith(("TRYAGAIN", "UNKNOWN")):
                    raise
                op["result"] = "fail" if str(e).startswith("TRYAGAIN") else "info"
            except (OSError, ConnectionError):
                op["complete"] = None
                op["result"] = "info"
                conn.close()
                conn = None
            self.hist.add(op)
            time.sleep(0.0005)
        if conn:
            conn.close()


def attempt(cluster, node, conn, process, hist, cur, mine):
    """One promotion attempt; returns (reply or None, conn to use next)."""
    op = {"process": process, "op": "cas", "key": HKEY,
          "expected": None if cur is None else str(cur), "new": str(mine), "invoke": now_us()}
    args = ["MODEL.ALIAS", KEY, "production", mine]
    args += ["IFNONE"] if cur is None else ["IFVERSION", cur]
    reply = None
    try:
        if conn is None:
            conn = Conn(cluster.port(node))
        reply = conn.call(*args)
        op["complete"] = now_us()
        if reply not in (0, 1):
            fail("MODEL.ALIAS answered %r" % (reply,))
        op["result"] = "ok" if reply == 1 else "fail"
    except RespError as e:
        op["complete"] = now_us()
        if str(e).startswith("TRYAGAIN"):
            op["result"] = "fail"
        elif str(e).startswith("UNKNOWN"):
            op["result"] = "info"
        else:
            fail("MODEL.ALIAS on node %d: %s" % (node, e))
    except (OSError, ConnectionError):
        op["complete"] = None
        op["result"] = "info"
        if conn:
            conn.close()
        conn = None
    hist.add(op)
    return reply, conn


class Promoter(threading.Thread):
    def __init__(self, cluster, node, process, hist, cur, mine, barrier):
        super().__init__(daemon=True)
        self.cluster, self.node, self.process, self.hist = cluster, node, process, hist
        self.cur, self.mine, self.barrier = cur, mine, barrier
        self.replies = []
        self.error = None

    def run(self):
        try:
            conn = Conn(self.cluster.port(self.node))
            self.barrier.wait(10)
            end = time.time() + 20
            while time.time() < end:
                reply, conn = attempt(self.cluster, self.node, conn, self.process, self.hist,
                                      self.cur, self.mine)
                self.replies.append(reply)
                if reply in (0, 1):
                    break
                time.sleep(0.05)
                if self.node in self.cluster.down:
                    self.node = self.cluster.live()[0]
            if conn:
                conn.close()
        except SystemExit as e:
            self.error = "promoter: exit %s" % e.code
        except BaseException as e:
            self.error = "promoter on node %d: %r" % (self.node, e)


def call_retry(cluster, node, *args, secs=20):
    """A command on node (or another live one) until it gets an answer
    other than TRYAGAIN / UNKNOWN / a lost connection."""
    end = time.time() + secs
    while time.time() < end:
        if node in cluster.down:
            node = cluster.live()[0]
        try:
            c = Conn(cluster.port(node))
            try:
                return c.call(*args)
            finally:
                c.close()
        except RespError as e:
            if not str(e).startswith(("TRYAGAIN", "UNKNOWN")):
                raise
        except (OSError, ConnectionError):
            pass
        time.sleep(0.1)
    fail("%s: no answer within %ds" % (" ".join(map(str, args)), secs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--spectra", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--kill-round", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cluster = Cluster([int(p) for p in a.ports.split(",")], a.dir, a.spectra)
    hist = History()
    try:
        summary = race(a, cluster, hist)
    finally:
        # Written whatever happened, for spectra check and for the record.
        with open(a.out, "w") as f:
            for op in sorted(hist.ops, key=lambda o: o["invoke"]):
                f.write(json.dumps(op, separators=(",", ":")) + "\n")
    print(summary)


def race(a, cluster, hist):
    """Runs the race; returns the summary line (or exits 1 on a failed
    check)."""
    stop = threading.Event()
    readers = [Reader(cluster, n, 100 + n, hist, stop) for n in cluster.nodes()]
    for r in readers:
        r.start()
    time.sleep(0.05)

    # Version 1 and the alias's first value (a cas from absent).
    v1 = call_retry(cluster, 1, "MODEL.REGISTER", KEY, "s3://race/initial")
    conn, end = None, time.time() + 20
    reply = None
    while reply not in (0, 1) and time.time() < end:
        reply, conn = attempt(cluster, 1, conn, 1, hist, None, v1)
        if reply not in (0, 1):
            time.sleep(0.05)
    if conn:
        conn.close()
    got = version_of(call_retry(cluster, 1, "MODEL.GET", KEY, "ALIAS", "production"))
    if got != v1:
        fail("MODEL.ALIAS m production %d IFNONE answered %r; the alias is at %r"
             % (v1, reply, got))
    cur = v1
    killed_in = None
    unclear = 0  # rounds with an attempt answered TRYAGAIN, UNKNOWN or not at all
    process = 2
    for rnd in range(1, a.rounds + 1):
        kill = rnd == a.kill_round
        if kill:
            lead = cluster.leader()
            other = [n for n in cluster.live() if n != lead][rnd % 2]
            pair = (lead, other)
        else:
            n = len(cluster.ports)
            pair = (1 + rnd % n, 1 + (rnd + 1) % n)
        cands = [call_retry(cluster, node, "MODEL.REGISTER", KEY, "s3://race/%d/%d" % (rnd, i),
                            "META", '{"round":%d}' % rnd)
                 for i, node in enumerate(pair)]
        if kill:
            for n in cluster.live():
                if n != lead:
                    cluster.admin(n, "DEBUG", "NET", "FAULTS", 0, 0, 0, 300, 0, "TO", lead)
        barrier = threading.Barrier(2)
        ps = [Promoter(cluster, pair[i], process + i, hist, cur, cands[i], barrier)
              for i in range(2)]
        process += 2
        for p in ps:
            p.start()
        if kill:
            # The followers' frames to the leader are held 300 ms, so the
            # race's entries are in every log but not yet committed (and a
            # forwarded attempt not yet delivered) when the leader dies.
            time.sleep(0.1)
            cluster.kill(pair[0])
            killed_in = rnd
        for p in ps:
            p.join(30)
            if p.is_alive() or p.error:
                fail("round %d: %s" % (rnd, p.error or "a promoter did not finish"))
        if kill:
            for n in cluster.live():
                cluster.admin(n, "DEBUG", "NET", "HEAL")
            cluster.start(pair[0])
        got = version_of(call_retry(cluster, pair[1], "MODEL.GET", KEY, "ALIAS", "production"))
        ones = [i for i in range(2) if 1 in ps[i].replies]
        if got not in cands:
            fail("round %d: alias at %r after the race of %r from %d" % (rnd, got, cands, cur))
        if len(ones) > 1:
            fail("round %d: both promoters were told they won (%r)" % (rnd, cands))
        if ones and cands[ones[0]] != got:
            fail("round %d: promoter of %d was told it won, alias is at %d"
                 % (rnd, cands[ones[0]], got))
        # Where each promoter got a clear answer at once (no kill, no
        # election meanwhile), one was 1 and the other 0.
        clear = all(len(p.replies) == 1 for p in ps)
        if clear and sorted(r for p in ps for r in p.replies) != [0, 1]:
            fail("round %d: replies %r, wanted one 1 and one 0"
                 % (rnd, [p.replies for p in ps]))
        if not clear:
            unclear += 1
        cur = got
        # A pause, so the readers see each round's value for a while.
        time.sleep(0.01 + 0.002 * (rnd % 5))
    time.sleep(0.05)
    stop.set()
    for r in readers:
        r.join(15)
        if r.is_alive() or r.error:
            fail(r.error or "a reader did not stop")

    # No reader ever saw the alias go back.
    reads = []
    for r in readers:
        vals = [v for (_, _, v) in r.values]
        prev = None
        for v in vals:
            if v is None and prev is not None:
                fail("reader on node %d saw the alias vanish after %d" % (r.node, prev))
            if v is not None and prev is not None and v < prev:
                fail("reader on node %d saw the alias go from %d back to %d" % (r.node, prev, v))
            prev = v if v is not None else prev
        reads += r.values
    reads.sort(key=lambda x: x[1])
    done_max, j = 0, 0
    for inv, _, v in sorted(reads, key=lambda x: x[0]):
        while j < len(reads) and reads[j][1] < inv:
            done_max = max(done_max, reads[j][2] or 0)
            j += 1
        if (v or 0) < done_max:
            fail("a read called after another had returned %d returned %r" % (done_max, v))
    nreads = sum(len(r.values) for r in readers)
    if any(len(r.values) < 10 for r in readers):
        fail("a reader got fewer than 10 answers: %r" % [len(r.values) for r in readers])

    cas = [o for o in hist.ops if o["op"] == "cas"]
    return ("model_race: %d rounds (leader killed in round %s; %d rounds with unclear "
            "answers), %d promotions attempted (%d ok, %d fail, %d info), %d reads ok, "
            "alias at version %d"
            % (a.rounds, killed_in, unclear, len(cas),
               sum(o["result"] == "ok" for o in cas), sum(o["result"] == "fail" for o in cas),
               sum(o["result"] == "info" for o in cas), nreads, cur))


if __name__ == "__main__":
    main()
