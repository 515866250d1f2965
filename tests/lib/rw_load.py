#!/usr/bin/python3
"""rw_load: a writer on one node and a reader on another, for a while.

Usage: rw_load.py WRITE_PORT READ_PORT PREFIX KEYS SECONDS [WRITE_LEVEL READ_LEVEL [GAP_MS]]

In rounds until SECONDS have passed: the writer sends `LEVEL <w> SET
<prefix><i> <n>` for every one of KEYS keys (pipelined, one connection)
and waits for the replies; GAP_MS later (default 20) the reader sends
`LEVEL <r> GET <prefix><i>` for every key the same way. So a read follows
the acknowledged write of its key by at least the gap: with replication
faster than that it sees it, with replication delayed it does not. Prints
"writes N reads N errors N". Levels default to quorum and one. A failed
connection raises (exit 1).
"""
import socket
import sys
import time


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def reply(self):
        """Reads one reply; returns True if it was an error."""
        ln = self.line()
        t = ln[:1]
        if t in (b"-", b"!"):
            return True
        if t == b"$":
            n = int(ln[1:])
            if n >= 0:
                while len(self.buf) < n + 2:
                    chunk = self.s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    self.buf += chunk
                self.buf = self.buf[n + 2:]
        elif t == b"*":
            for _ in range(max(int(ln[1:]), 0)):
                self.reply()
        return False


def main():
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    wport, rport, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    keys, secs = int(sys.argv[4]), float(sys.argv[5])
    wl = sys.argv[6] if len(sys.argv) > 6 else "quorum"
    rl = sys.argv[7] if len(sys.argv) > 7 else "one"
    gap = float(sys.argv[8]) / 1000 if len(sys.argv) > 8 else 0.02
    w, r = Conn(wport), Conn(rport)
    writes = reads = errors = n = 0
    end = time.time() + secs
    while time.time() < end:
        w.s.sendall(b"".join(cmd("LEVEL", wl, "SET", "%s%d" % (prefix, i), n)
                             for i in range(keys)))
        for _ in range(keys):
            errors += w.reply()
        time.sleep(gap)
        r.s.sendall(b"".join(cmd("LEVEL", rl, "GET", "%s%d" % (prefix, i))
                             for i in range(keys)))
        for _ in range(keys):
            errors += r.reply()
        writes += keys
        reads += keys
        n += 1
    print("writes %d reads %d errors %d" % (writes, reads, errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
