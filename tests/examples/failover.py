#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two instances of an embedding example (examples/), one cluster on
127.0.0.1: a session's counter, written on both, goes on on the survivor
after the other is SIGKILLed.

    failover.py EXAMPLE_BINARY

Exit 0 when it does; 1 with what went wrong. Bounded: every wait has a
deadline, the whole run ends within 60 s, and only the processes started
here are ended (by PID)."""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE = time.monotonic() + 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, cookie=None):
    """GET /counter: (status, counter or None, session cookie or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/counter", headers={"Cookie": cookie} if cookie else {})
        res = conn.getresponse()
        body = res.read().decode()
        set_cookie = res.getheader("Set-Cookie")
        m = re.search(r'"counter":(\d+)', body)
        return res.status, int(m.group(1)) if m else None, set_cookie.split(";")[0] if set_cookie else None
    finally:
        conn.close()


def wait_http(port, proc, name):
    while time.monotonic() < DEADLINE:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on {port} in time")


def main():
    binary = sys.argv[1]
    name = os.path.basename(binary)
    receivers = [free_port(), free_port()]
    https = [free_port(), free_port()]
    work = tempfile.mkdtemp(prefix="troupe-example-")
    config = os.path.join(work, "cluster.yaml")
    with open(config, "w") as f:
        # One cluster name per run; a static member list, no multicast.
        f.write(f"""cluster:
  name: example-{os.getpid()}
receiver:
  address: 127.0.0.1
membership:
  multicast:
    enabled: false
  static:
    - 127.0.0.1:{receivers[0]}
    - 127.0.0.1:{receivers[1]}
admin:
  enabled: false
manager:
  type: delta
  send_options: sync
""")
    procs = []
    try:
        for i, node in enumerate(["ex-a", "ex-b"]):
            log = open(os.path.join(work, node + ".log"), "w")
            procs.append(subprocess.Popen(
                [binary, "--config", config, "--port", str(https[i]),
                 "--set", f"cluster.node={node}", "--set", f"receiver.port={receivers[i]}"],
                stdout=log, stderr=subprocess.STDOUT))
            wait_http(https[i], procs[-1], node)
        a, b = https
        # A session made on b, continued on a: once a reads b's count, the
        # two replicate to each other (until then a starts its own session).
        cookie = None
        while time.monotonic() < DEADLINE:
            status, n, cookie = get(b)
            if status != 200 or n != 1 or not cookie:
                raise SystemExit(f"first request on b: {status} counter={n} cookie={cookie}")
            status, n, _ = get(a, cookie)
            if status == 200 and n == 2:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the two instances did not form a cluster in time")
        steps = [(b, 3), (a, 4)]
        for port, expected in steps:
            status, n, new_cookie = get(port, cookie)
            cookie = new_cookie or cookie
            if status != 200 or n != expected:
                raise SystemExit(f"on :{port}: {status} counter={n}, expected {expected}")
        procs[0].send_signal(signal.SIGKILL)  # a, which served the last request
        procs[0].wait(timeout=10)
        status, n, new_cookie = get(b, cookie)
        if status != 200 or n != 5:
            raise SystemExit(f"after a's SIGKILL, on b: {status} counter={n}, expected 5")
        print(f"{name}: counter 1..4 on two instances, 5 on the survivor after SIGKILL: ok")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for node in ["ex-a", "ex-b"]:
            path = os.path.join(work, node + ".log")
            if os.path.exists(path):
                with open(path) as f:
                    tail = f.read()[-2000:]
                if tail:
                    print(f"--- {node} log (tail)\n{tail}")


if __name__ == "__main__":
    main()
