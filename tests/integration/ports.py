"""Ports for test clusters that TIME_WAIT sockets cannot starve (issue 12
point 6). Used by harness.py and chaos/cluster.py.

Two rules:

1. Ports are chosen outside the kernel's ephemeral range
   (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), at
   random in 10000..(low - 1) and (high + 1)..65535. The kernel never hands
   those to outgoing connections, so neither a burst of short connections
   (a benchmark leaves tens of thousands of client ports in TIME_WAIT) nor a
   ledgerd's own connections to its peers can take a port between the
   moment it is picked and the moment a node binds it. Binding port 0, as
   before, returned an ephemeral port: exactly the ones in use.
2. "Free" means what ledgerd needs: a socket with SO_REUSEADDR (as ledgerd
   and libuv bind) can bind and listen on it. A port whose only users are
   TIME_WAIT sockets is free; one with a listener is not.

Ports below 10000 are left alone (well-known services, `make cluster`'s
7001-7010 and 8001-8010). Ports picked by this process are not handed out
again, so the clusters of one test run never collide with each other;
clusters of other processes are told apart by the bind check, and a start
that still loses a race retries with new ports (harness.Cluster.start).
"""
import random
import socket
import threading

HOST = "127.0.0.1"
LOWEST = 10000

_lock = threading.Lock()
_given = set()
_rng = random.Random()


def ephemeral_range():
    """(low, high) of the kernel's ephemeral ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def spans():
    """The port ranges outside the ephemeral range, inclusive, as a list of
    (first, last); the whole range above LOWEST if nothing is left."""
    lo, hi = ephemeral_range()
    out = []
    if lo - 1 >= LOWEST:
        out.append((LOWEST, lo - 1))
    if hi + 1 <= 65535:
        out.append((max(hi + 1, LOWEST), 65535))
    return [s for s in out if s[1] - s[0] >= 100] or [(LOWEST, 65535)]


def listenable(port, host=HOST):
    """Whether a socket with SO_REUSEADDR can bind and listen on port (as
    ledgerd does); the probe socket is closed again at once."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _pick_run(count, avoid):
    """A random base such that base..base+count-1 lie in one span, are not
    avoided or given before, and are all listenable; marks them given."""
    sp = spans()
    weights = [max(1, last - first + 2 - count) for first, last in sp]
    for _ in range(2000):
        first, last = _rng.choices(sp, weights)[0]
        if last - first + 1 < count:
            continue
        base = _rng.randint(first, last - count + 1)
        run = range(base, base + count)
        with _lock:
            if any(p in _given or p in avoid for p in run):
                continue
        if all(listenable(p) for p in run):
            with _lock:
                if any(p in _given for p in run):
                    continue
                _given.update(run)
            return base
    raise RuntimeError(f"no {count} consecutive listenable ports outside "
                       f"the ephemeral range (spans {sp})")


def free_ports(n, avoid=()):
    """n distinct listenable ports outside the ephemeral range."""
    return [_pick_run(1, avoid) for _ in range(n)]


def free_port_range(count, avoid=()):
    """A base such that base..base+count-1 are all listenable (and none in
    avoid), outside the ephemeral range."""
    return _pick_run(count, avoid)
