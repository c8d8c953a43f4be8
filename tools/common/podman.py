# SPDX-License-Identifier: Apache-2.0
"""troupe containers under podman, for the tools and tests that run nodes as
containers of the image tools/container-image builds (consistency-check
--containers, membership-bench --containers, tests/containers).

Every container joins a network namespace made by tools/netlab, by path
(--network ns:/var/run/netns/NAME): its packets stay inside the lab and
nothing changes on the host (no podman network, no bridge, no firewall rule).
Containers are named by their caller and removed by name (podman rm -f);
nothing else is touched."""

import resource
import shutil
import signal
import subprocess


def unavailable(image=None):
    """Why containers cannot run here (a sentence), or None."""
    import os
    if os.geteuid() != 0:
        return "containers need root (podman's storage, the lab's namespaces)"
    if shutil.which("podman") is None:
        return "podman not found (Debian: apt-get install podman runc)"
    if image is not None:
        r = subprocess.run(["podman", "image", "exists", image], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            return f"no image {image} (build it with tools/container-image)"
    return None


def ulimits():
    """podman's --ulimit flags. runc fails on setrlimit without explicit ones on
    this kind of machine, and they may not exceed the caller's hard limits; a
    node needs far fewer (seen here: nproc 65536 refused under a hard limit of
    96553, 4096 accepted)."""
    flags = []
    for flag, res, want in (("nofile", resource.RLIMIT_NOFILE, 16384), ("nproc", resource.RLIMIT_NPROC, 4096)):
        hard = resource.getrlimit(res)[1]
        value = want if hard == resource.RLIM_INFINITY else min(hard, want)
        flags += ["--ulimit", f"{flag}={value}:{value}"]
    return flags


def run_argv(name, netns, image, program=None, args=(), config=None, detach=False, healthcheck=False,
             env=(), extra=(), remove_on_exit=True):
    """`podman run` of one node: container NAME in namespace NETNS (its name under
    /var/run/netns), PROGRAM (troupe-httpd or troupe-node, through the image's
    entry point; None: the image's own command) with ARGS. CONFIG, a host path, is mounted read-only and named by
    TROUPE_CONFIG. The health check is off unless asked for: podman schedules it
    with systemd timers, which are not there (`podman healthcheck run` works).
    remove_on_exit=False keeps an exited container for its exit status."""
    argv = ["run", *(["--rm"] if remove_on_exit else []), "--name", name, "--runtime", "runc", *ulimits(),
            "--network", f"ns:/var/run/netns/{netns}"]
    if detach:
        argv.append("-d")
    if not healthcheck:
        argv.append("--no-healthcheck")
    if config is not None:
        argv += ["-v", f"{config}:/etc/troupe/cluster-file.yaml:ro", "-e",
                 "TROUPE_CONFIG=/etc/troupe/cluster-file.yaml"]
    for kv in env:
        argv += ["-e", kv]
    argv += [*extra, image, *([program] if program else []), *args]
    return argv


def signal_argv(name, sig):
    """The podman command that gives container NAME a signal: SIGSTOP freezes it
    (pause: the cgroup freezer, every process at once), SIGCONT thaws it."""
    if sig == signal.SIGSTOP:
        return ["pause", name]
    if sig == signal.SIGCONT:
        return ["unpause", name]
    return ["kill", "-s", str(int(sig)), name]


def remove_argv(names):
    """Removes the containers NAMES, running, paused or gone, at once."""
    return ["rm", "-f", "-t", "0", "--ignore", *names]
