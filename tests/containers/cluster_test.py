#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A troupe-httpd cluster in real containers: one podman container of the
troupe image per tools/netlab namespace, discovering each other by multicast
inside the lab or through a dnsmasq whose records the test changes, and the
compose file's services run as it describes them.

    tests/containers/cluster_test.py --image IMAGE --scenario multicast|dns|compose
                                     [--haproxy-image IMAGE] [--keep-logs DIR]

Nodes n1..n3 run in namespaces LAB-1..3 (the image's entry point, its default
cluster file, settings through TROUPE_SET); LAB-4 is a spare namespace (a new
address); this process and dnsmasq run in LAB-5 (entered with setns, so
podman still sees the host's mounts). Steps, each checked:

  multicast
    start     three containers; each answers /healthz, is healthy (`podman
              healthcheck run`, the image's HEALTHCHECK) and lists the three alive
    kill      a session made on n1 (three increments); `podman kill` n1; the
              next request on n2 continues its counter; n1 started again gets
              the session by state transfer
    stop      `podman stop` n2: exit status 0 within the grace period, and the
              others see it "left" (its BYE), not "gone"; started again
    pause     `podman pause` n3 (every process frozen); the others drop it;
              the session is written on n1; `podman unpause`: n3 is back in
              every view and reads the latest value (reconciled)
    cut       netlab cut n1's link; n2 drops it and writes the session; heal:
              one view again, n1 and n3 read the latest value
  dns (membership.multicast.enabled false, membership.dns.name troupe.test)
    start     as above, members found through DNS only
    readdress n3 killed and started in LAB-4 (a new address); the DNS record
              changes; everyone lists n3 alive at the new address and the old
              one goes; n3 reads the session
    kill      `podman kill` n1 (the session's node); n2 continues the counter
  compose (tools/container/compose.yaml: web1..web3 and haproxy, each in a
          namespace with its image, environment, hostname, user, command and
          volumes from the file; dnsmasq answers the service names, hostnames
          and network aliases as Compose's DNS does; images localhost/troupe
          and localhost/troupe-haproxy mapped to --image and --haproxy-image)
    start     the web services answer /healthz and list each other alive
              (found through the alias troupe-web); HAProxy answers
    failover  three increments through HAProxy; `podman kill` of the node the
              id's route names; the next request through HAProxy continues the
              counter on a survivor; once the survivors have dropped the dead
              node, the id takes a survivor's route (within ten requests), and
              the next request sticks there

Prints progress on stderr and one JSON line on stdout with the timings (from
`podman run` to the first 200 on /healthz per container, stop duration, times to detect each fault). Exit 0
when every check passed, 1 otherwise, 77 when it cannot run (not root, no
podman, no image, no dnsmasq for dns and compose, no python3-yaml for compose). Everything it makes (the
containers, the lab, dnsmasq) is removed at the end, also on failure or
SIGTERM or when the run passes its 240 s deadline. Every wait is bounded.
"""

import argparse
import ctypes
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NETLAB = os.path.join(REPO, "tools", "netlab")
COMPOSE = os.path.join(REPO, "tools", "container", "compose.yaml")
sys.path.insert(0, os.path.join(REPO, "tools", "common"))
import podman  # noqa: E402  (tools/common/podman.py)

COOKIE = "TROUPE_SESSION"   # the image's default manager.cookie
HTTP_PORT, ADMIN_PORT = 8080, 9090
DNS_NAME = "troupe.test"
NODES = 3
SPARE, CLIENT = NODES + 1, NODES + 2
CLONE_NEWNET = 0x40000000
DEADLINE_S = 240           # the whole run; ctest's TIMEOUT is 300
T0 = time.monotonic()


def note(message):
    print(f"cluster_test [{time.monotonic() - T0:6.1f}s]: {message}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


class Interrupted(BaseException):
    pass


def run(argv, timeout=60, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def wait_for(what, predicate, limit_s, step_s=0.1):
    """Polls predicate until it is true; Failed after limit_s. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            raise Failed(f"{what}: not within {limit_s} s")
        time.sleep(step_s)


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def get(host, port, path, cookie=None, timeout=5.0):
    """(status, JSON or None, the Set-Cookie session id or None); (None, None, None) unreachable."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
        response = conn.getresponse()
        body = response.read()
        set_cookie = None
        for header in response.headers.get_all("Set-Cookie") or []:
            first = header.split(";", 1)[0].strip()
            if first.startswith(COOKIE + "="):
                set_cookie = first[len(COOKIE) + 1:]
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        return response.status, doc, set_cookie
    except OSError:
        return None, None, None
    finally:
        conn.close()


class Cluster:
    def __init__(self, lab, scenario, workdir):
        self.lab = lab
        self.scenario = scenario
        self.workdir = workdir
        self.image = None
        self.addrs = {i: run([NETLAB, "addr", lab, str(i)]).stdout.strip() for i in range(1, CLIENT + 1)}
        self.where = {}          # node index -> namespace index it runs in
        self.names = set()       # every container name we used
        self.dns = None
        self.hosts = os.path.join(workdir, "hosts")
        self.timings = {}

    # -- containers ---------------------------------------------------------
    def container(self, i):
        return f"{self.lab}-n{i}"

    def start(self, i, ns=None):
        """Starts node i's container in namespace ns (default i); returns the seconds from
        `podman run` to its first 200 on /healthz (then checks the image's health check)."""
        ns = ns or i
        name = self.container(i)
        self.names.add(name)
        run(["podman", *podman.remove_argv([name])])
        settings = [f"cluster.name={self.lab}", f"cluster.node=n{i}", "membership.failure_detector.ping_interval=500ms"]
        extra = []
        if self.scenario == "dns":
            settings += ["membership.multicast.enabled=false", f"membership.dns.name={DNS_NAME}",
                         "membership.dns.interval=500ms"]
            extra = ["--dns", self.addrs[CLIENT]]
        # Not --rm: the exit status of a stopped container is checked.
        argv = podman.run_argv(name, f"{self.lab}-{ns}", self.image, "troupe-httpd", detach=True,
                               healthcheck=True, env=[f"TROUPE_SET={' '.join(settings)}"],
                               extra=[*self.label(), *extra], remove_on_exit=False)
        started = time.monotonic()
        run(["podman", *argv])
        self.where[i] = ns
        wait_for(f"n{i} answers /healthz", lambda: get(self.host(i), HTTP_PORT, "/healthz", timeout=1.0)[0] == 200,
                 60, 0.02)
        ready = time.monotonic() - started
        # The image's HEALTHCHECK says the same.
        wait_for(f"n{i} healthy (podman healthcheck run)",
                 lambda: run(["podman", "healthcheck", "run", name], check=False).returncode == 0, 10, 0.2)
        return ready

    def label(self):
        """Every container of this run carries it, so that clean-up finds them all."""
        return ["--label", f"troupe-test={self.lab}"]

    def run_service(self, name, service, ns, image):
        """Runs one compose service as its file says, in namespace ns, detached."""
        container = f"{self.lab}-{name}"
        self.names.add(container)
        extra = [*self.label(), "--dns", self.addrs[CLIENT]]
        if "hostname" in service:
            extra += ["--hostname", service["hostname"]]
        if "user" in service:
            extra += ["--user", str(service["user"])]
        for volume in service.get("volumes") or []:
            source, _, rest = volume.partition(":")
            extra += ["-v", f"{os.path.join(os.path.dirname(COMPOSE), source)}:{rest}"]
        env = [f"{k}={v}" for k, v in (service.get("environment") or {}).items()]
        command = service.get("command") or []
        argv = podman.run_argv(container, f"{self.lab}-{ns}", image, command[0] if command else None, command[1:],
                               detach=True, healthcheck=True, env=env, extra=extra, remove_on_exit=False)
        run(["podman", *argv])
        return container

    def host(self, i):
        return self.addrs[self.where[i]]

    def endpoint(self, where):
        """(host, port) of a node index (its HTTP port) or of a (host, port) given as it is."""
        return where if isinstance(where, tuple) else (self.host(where), HTTP_PORT)

    def members(self, i):
        """{name: (state, endpoint)} as node i (an index, or an address) lists them; {} when
        it does not answer."""
        status, doc, _ = get(i if isinstance(i, str) else self.host(i), ADMIN_PORT, "/members", timeout=2.0)
        if status != 200 or not isinstance(doc, list):
            return {}
        return {m.get("name"): (m.get("state"), m.get("endpoint")) for m in doc}

    def alive(self, i):
        return {n for n, (state, _) in self.members(i).items() if state == "alive"}

    def one_view(self, nodes):
        want = {f"n{i}" for i in nodes}
        return all(self.alive(i) == want for i in nodes)

    def save_logs(self):
        for name in sorted(self.names):
            r = run(["podman", "logs", name], check=False)
            with open(os.path.join(self.workdir, f"{name}.log"), "w") as f:
                f.write(r.stdout + r.stderr)

    def close(self):
        remove_labelled(self.lab)
        if self.dns is not None and self.dns.poll() is None:
            self.dns.kill()
            self.dns.wait(timeout=10)

    # -- DNS ----------------------------------------------------------------
    def write_hosts(self, records):
        """dnsmasq's hosts file: (address, name) pairs; a name listed twice gets both."""
        with open(self.hosts + ".new", "w") as f:
            for address, name in records:
                f.write(f"{address} {name}\n")
        os.replace(self.hosts + ".new", self.hosts)

    def node_records(self, nodes):
        return [(self.host(i) if i in self.where else self.addrs[i], DNS_NAME) for i in nodes]

    def start_dns(self, records):
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.write_hosts(records)
        log = open(os.path.join(self.workdir, "dnsmasq.log"), "w")
        self.dns = subprocess.Popen(
            [dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
             "--user=root", "--bind-interfaces", f"--listen-address={self.addrs[CLIENT]}", "--port=53",
             f"--addn-hosts={self.hosts}", "--local-ttl=0", "--log-facility=-"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()


class Session:
    """One client's session: its cookie and the last acknowledged counter."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.id = None
        self.value = 0

    def increment(self, i):
        status, doc, set_cookie = get(*self.cluster.endpoint(i), "/counter", self.id)
        if status != 200 or not isinstance(doc, dict):
            raise Failed(f"GET /counter on n{i}: status {status}, {doc}")
        if set_cookie:
            self.id = set_cookie
        if doc.get("counter") != self.value + 1:
            raise Failed(f"GET /counter on n{i}: counter {doc.get('counter')}, expected {self.value + 1} "
                         f"(session {self.id})")
        self.value += 1

    def read(self, i):
        status, doc, set_cookie = get(*self.cluster.endpoint(i), "/session", self.id)
        if status != 200 or not isinstance(doc, dict):
            return None
        return (doc.get("attributes") or {}).get("counter")

    def expect(self, i, why):
        wait_for(f"n{i} reads counter {self.value} ({why})", lambda: self.read(i) == self.value, 20)


def start_cluster(c, s, t, how):
    """Starts n1..n3, waits for one view, makes the session on n1 (three increments)."""
    nodes = range(1, NODES + 1)
    for i in nodes:
        t[f"n{i}_start_to_ready_ms"] = round(c.start(i) * 1000)
    t["one_view_s"] = round(wait_for(f"one view of three ({how})", lambda: c.one_view(nodes), 30), 3)
    note(f"three containers healthy, one view ({how}): {t}")
    for _ in range(3):
        s.increment(1)
    return nodes


def scenario_multicast(c, s, t):
    nodes = start_cluster(c, s, t, "multicast")
    if not s.id.endswith(".n1"):
        raise Failed(f"a session made on n1 has id {s.id}")
    run(["podman", "kill", "-s", "KILL", c.container(1)])
    s.increment(2)  # the session survives its node's SIGKILL
    t["kill_detected_s"] = round(wait_for("n2 drops the killed n1", lambda: "n1" not in c.alive(2), 20), 3)
    note(f"podman kill n1: n2 served counter {s.value}; n1 dropped in {t['kill_detected_s']} s")
    c.start(1)
    wait_for("one view after n1's restart", lambda: c.one_view(nodes), 30)
    s.expect(1, "state transfer after restart")

    started = time.monotonic()
    run(["podman", "stop", "-t", "10", c.container(2)], timeout=30)
    t["stop_s"] = round(time.monotonic() - started, 3)
    code = run(["podman", "inspect", "-f", "{{.State.ExitCode}}", c.container(2)]).stdout.strip()
    if code != "0":
        raise Failed(f"podman stop n2: exit status {code}, expected 0 (a clean stop)")
    wait_for("n1 and n3 see n2 left", lambda: all(c.members(i).get("n2", ("",))[0] == "left" for i in (1, 3)), 5)
    note(f"podman stop n2: exit 0 in {t['stop_s']} s, n1 and n3 list it as left")
    s.increment(3)
    c.start(2)
    wait_for("one view after n2's restart", lambda: c.one_view(nodes), 30)

    run(["podman", "pause", c.container(3)])
    try:
        # Both writers must have dropped it: a sync write to a member still in
        # view waits for its ack (sender.ack_timeout).
        t["pause_detected_s"] = round(wait_for("n1 and n2 drop the paused n3",
                                               lambda: all("n3" not in c.alive(i) for i in (1, 2)), 20), 3)
        s.increment(1)
        s.increment(2)
    finally:
        run(["podman", "unpause", c.container(3)], check=False)
    t["unpause_to_one_view_s"] = round(wait_for("one view after unpause", lambda: c.one_view(nodes), 30), 3)
    s.expect(3, "reconciled after unpause")
    note(f"podman pause n3: dropped in {t['pause_detected_s']} s; unpaused, reads {s.value}")

    run([NETLAB, "cut", c.lab, "1"])
    try:
        t["cut_detected_s"] = round(wait_for("n2 and n3 drop the cut n1",
                                             lambda: all("n1" not in c.alive(i) for i in (2, 3)), 20), 3)
        s.increment(2)
    finally:
        run([NETLAB, "heal", c.lab, "1"], check=False)
    t["heal_to_one_view_s"] = round(wait_for("one view after heal", lambda: c.one_view(nodes), 30), 3)
    s.expect(1, "reconciled after the heal")
    s.expect(3, "after the heal")
    note(f"cut n1: dropped in {t['cut_detected_s']} s; healed, n1 and n3 read {s.value}")


def scenario_dns(c, s, t):
    c.start_dns(c.node_records(range(1, NODES + 1)))
    nodes = start_cluster(c, s, t, "DNS")

    old = c.host(3)
    run(["podman", "kill", "-s", "KILL", c.container(3)])
    wait_for("n1 drops the killed n3", lambda: "n3" not in c.alive(1), 20)
    c.where[3] = SPARE
    c.write_hosts(c.node_records(nodes))
    c.dns.send_signal(signal.SIGHUP)  # dnsmasq reads its hosts files again
    c.start(3, SPARE)
    new = c.host(3)

    def readdressed():
        for i in nodes:
            m = c.members(i)
            if m.get("n3", ("", ""))[0] != "alive" or not str(m["n3"][1]).startswith(new + ":"):
                return False
            if any(str(ep).startswith(old + ":") and state == "alive" for state, ep in m.values()):
                return False
        return c.one_view(nodes)

    t["readdress_to_one_view_s"] = round(wait_for(f"n3 alive at {new} (was {old}) everywhere", readdressed, 30), 3)
    s.expect(3, "state transfer at the new address")
    note(f"n3 restarted at {new} (was {old}): one view in {t['readdress_to_one_view_s']} s, reads {s.value}")

    run(["podman", "kill", "-s", "KILL", c.container(1)])
    s.increment(2)
    note(f"podman kill n1: n2 served counter {s.value}")


def scenario_compose(c, s, t, haproxy_image):
    import yaml  # Debian: python3-yaml
    with open(COMPOSE) as f:
        services = yaml.safe_load(f)["services"]
    images = {"localhost/troupe:latest": c.image, "localhost/troupe-haproxy:latest": haproxy_image}
    webs = sorted(n for n, svc in services.items() if svc.get("image") == "localhost/troupe:latest")
    others = sorted(n for n in services if n not in webs)
    if len(webs) < 3 or len(webs) + len(others) > SPARE:
        raise Failed(f"{COMPOSE}: expected three troupe services and a balancer (got {webs} and {others})")
    ns = {name: i for i, name in enumerate(webs + others, 1)}
    # Compose's DNS: a service's name, its hostname and its network aliases.
    records = []
    for name, svc in services.items():
        names = {name, svc.get("hostname", name)}
        for net in (svc.get("networks") or {}).values() if isinstance(svc.get("networks"), dict) else []:
            names |= set((net or {}).get("aliases") or [])
        records += [(c.addrs[ns[name]], n) for n in sorted(names)]
    c.start_dns(records)
    containers = {}
    for name in webs + others:
        image = images.get(services[name]["image"])
        if image is None:
            raise Failed(f"{COMPOSE}: service {name}: unknown image {services[name]['image']}")
        started = time.monotonic()
        containers[name] = c.run_service(name, services[name], ns[name], image)
        if name in webs:
            wait_for(f"{name} answers /healthz",
                     lambda: get(c.addrs[ns[name]], HTTP_PORT, "/healthz", timeout=1.0)[0] == 200, 60, 0.02)
            t[f"{name}_start_to_ready_ms"] = round((time.monotonic() - started) * 1000)

    def one_view():
        return all({n for n, (state, _) in c.members(c.addrs[ns[w]]).items() if state == "alive"} == set(webs)
                   for w in webs)

    t["one_view_s"] = round(wait_for("the web services list each other (alias troupe-web)", one_view, 30), 3)
    lb = (c.addrs[ns["haproxy"]], HTTP_PORT)
    wait_for("HAProxy answers /healthz", lambda: get(*lb, "/healthz", timeout=1.0)[0] == 200, 30)
    note(f"compose services up, one view: {t}")

    for _ in range(3):
        s.increment(lb)
    victim = s.id.rsplit(".", 1)[-1]
    if victim not in webs:
        raise Failed(f"session id {s.id} names no web service")
    run(["podman", "kill", "-s", "KILL", containers[victim]])
    s.increment(lb)  # through HAProxy, to a survivor: the counter goes on
    # A survivor rewrites the route once the victim is out of its view (at
    # once here, or within a few requests on a loaded machine).
    survivors = [w for w in webs if w != victim]
    wait_for(f"the survivors drop {victim}",
             lambda: all(victim not in {n for n, (st, _) in c.members(c.addrs[ns[w]]).items() if st == "alive"}
                         for w in survivors), 20)
    for _ in range(10):
        if s.id.rsplit(".", 1)[-1] in survivors:
            break
        s.increment(lb)
    route = s.id.rsplit(".", 1)[-1]
    if route not in survivors:
        raise Failed(f"after {victim}'s SIGKILL the id is still {s.id}: expected a survivor's route")
    s.increment(lb)
    if s.id.rsplit(".", 1)[-1] != route:
        raise Failed(f"the next request moved the session again: {s.id}")
    t["failover"] = f"{victim}->{route}"
    note(f"podman kill {victim}: through HAProxy the counter went on at {route} ({s.value})")


def remove_labelled(lab):
    """Removes every container of this run (label troupe-test=LAB), whatever its state."""
    r = subprocess.run(["podman", "ps", "-a", "-q", "--filter", f"label=troupe-test={lab}"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
    ids = r.stdout.split()
    if ids:
        subprocess.run(["podman", *podman.remove_argv(ids)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)


def inner(args, lab, workdir):
    setns(f"/var/run/netns/{lab}-{CLIENT}")
    c = Cluster(lab, args.scenario, workdir)
    c.image = args.image
    s = Session(c)
    t = {}
    try:
        if args.scenario == "compose":
            scenario_compose(c, s, t, args.haproxy_image)
        else:
            (scenario_dns if args.scenario == "dns" else scenario_multicast)(c, s, t)
        print(json.dumps({"scenario": args.scenario, "ok": True, "counter": s.value, **t}), flush=True)
        return 0
    except (Failed, subprocess.TimeoutExpired) as e:
        note(f"FAILED: {e}")
        print(json.dumps({"scenario": args.scenario, "ok": False, "error": str(e), **t}), flush=True)
        return 1
    finally:
        if args.keep_logs:
            c.save_logs()
        c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True)
    p.add_argument("--scenario", choices=("multicast", "dns", "compose"), default="multicast")
    p.add_argument("--haproxy-image", default="localhost/troupe-haproxy:latest",
                   help="the image of compose.yaml's haproxy service (compose)")
    p.add_argument("--keep-logs", metavar="DIR", default=None)
    args = p.parse_args()

    why_not = podman.unavailable(args.image)
    if why_not is None and args.scenario == "compose":
        why_not = podman.unavailable(args.haproxy_image)
        try:
            import yaml  # noqa: F401
        except ImportError:
            why_not = why_not or "python3-yaml not found (Debian package python3-yaml)"
    if why_not is None and args.scenario != "multicast" and not (shutil.which("dnsmasq") or
                                                                 os.access("/usr/sbin/dnsmasq", os.X_OK)):
        why_not = "dnsmasq not found (Debian package dnsmasq-base)"
    if why_not is not None:
        note(f"{why_not}; skipped")
        return 77

    def on_signal(signum, frame):
        note("deadline passed" if signum == signal.SIGALRM else f"signal {signum}")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # ctest's timeout SIGKILLs (CMake 3.25): end on our own well before it, so
    # that the clean-up below runs.
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(DEADLINE_S)
    lab = f"ct{os.getpid()}"
    workdir = os.path.abspath(args.keep_logs) if args.keep_logs else tempfile.mkdtemp(prefix="troupe-ct.")
    os.makedirs(workdir, exist_ok=True)
    host_net = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        run([NETLAB, "create", lab, str(CLIENT)])
        return inner(args, lab, workdir)
    except Interrupted:
        note("interrupted")
        return 130
    except (Failed, subprocess.TimeoutExpired) as e:
        note(f"FAILED: {e}")
        return 1
    finally:
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(sig, signal.SIG_IGN)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.setns(host_net, CLONE_NEWNET)
        os.close(host_net)
        # inner() removed its containers; one started while it was interrupted goes here.
        remove_labelled(lab)
        subprocess.run([NETLAB, "destroy", lab], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
