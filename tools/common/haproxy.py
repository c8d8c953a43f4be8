# SPDX-License-Identifier: Apache-2.0
"""HAProxy in front of troupe-httpd nodes on 127.0.0.1, for the tools that
need a real balancer (consistency-check --via haproxy, httpd-bench --via
haproxy). The configuration is tools/haproxy-config's, as users get it; the
process is started here and ended by its PID."""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAPROXY_CONFIG = os.path.join(HERE, "haproxy-config")


def binary():
    """The haproxy executable, or None (Debian installs it in /usr/sbin)."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


class Balancer:
    """One haproxy process started by this module, ended by PID."""

    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.address = ("127.0.0.1", port)
        self.log_path = log_path

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def start(servers, port, cookie, workdir, ready_within=15.0):
    """Starts HAProxy on 127.0.0.1:`port` over `servers` ([(node name,
    "host:port")]) and returns once a /healthz passes through it (bounded);
    RuntimeError if it does not."""
    haproxy = binary()
    if haproxy is None:
        raise RuntimeError("haproxy is not installed (Debian package haproxy)")
    config = subprocess.run([sys.executable, HAPROXY_CONFIG, f"--bind=127.0.0.1:{port}", f"--cookie={cookie}",
                             *(f"--server={name}={address}" for name, address in servers)],
                            check=True, capture_output=True, text=True, timeout=30).stdout
    path = os.path.join(workdir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(config)
    log_path = os.path.join(workdir, "haproxy.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([haproxy, "-db", "-f", path], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    balancer = Balancer(proc, port, log_path)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proc.returncode} (see {log_path})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0) as r:
                if r.status == 200:
                    return balancer
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.2)
    balancer.stop()
    raise RuntimeError(f"haproxy did not pass a request within {ready_within:.0f} s (see {log_path})")
