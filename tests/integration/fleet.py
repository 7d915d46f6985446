"""Many linewired agents at once (issue 9, "fleet scale"): started straight from
Popen with one watcher for all of them, since a paho client per agent (as harness.Agent
has) would cost a thread and a connection each. Used by test_fleet.py, test_bridge.py and
bench/fleet.py. The number of agents in the tests is LINEWIRE_FLEET_AGENTS (default 50)."""

import os
import signal
import subprocess
import time

import yaml

from harness import LINEWIRED, SLOWDOWN, Client, session_members, unique, wait_until

FLEET_AGENTS = int(os.environ.get("LINEWIRE_FLEET_AGENTS", "50"))
LINEWIRE = os.environ.get("LINEWIRE", "/work/main/build/cli/linewire")

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def default_commands(code=0):
    return {
        "uptime": {"exec": ["/usr/bin/uptime"]},
        # Prints the device name and exits with this device's code: the fan-out's exit
        # status is the highest of them.
        "code": {"exec": ["/bin/sh", "-c", f'echo "$LINEWIRE_DEVICE"; exit {code}']},
        "sleep": {"exec": ["/bin/sleep"], "args": {"pattern": "[0-9.]+", "max": 1},
                  "kill_grace": "500ms"},
        "seq": {"exec": ["/usr/bin/seq"], "args": {"pattern": "[0-9]+", "max": 1}},
    }


class FleetAgent:
    def __init__(self, directory, device, url, prefix, groups, commands, config=None,
                 log_level="info"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.device = device
        self.config_path = os.path.join(self.dir, "linewire.yaml")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.log_level = log_level
        # Its own state folder (crash safety is on by default, SPEC §5), not /var/lib.
        cfg = {"device": device, "prefix": prefix, "groups": groups, "broker": {"url": url},
               "state_dir": os.path.join(self.dir, "state"), "commands": commands}
        for k, v in (config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.proc = None
        self.pid = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([LINEWIRED, "--config", self.config_path, "--log-level",
                                      self.log_level], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=ENV, cwd=self.dir,
                                     start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Fleet:
    """`n` agents named {name}-000 ... on the broker(s) `urls` (agent i uses urls[i % len]),
    in group {name}-g0 or {name}-g1 (i % 2) and the group {name}-all. `codes` maps an
    agent's index to the exit code of its `code` command."""

    def __init__(self, directory, urls, n, prefix="lwfleet", name=None, commands=None,
                 codes=None, config=None, log_level="info"):
        self.dir = str(directory)
        self.prefix = prefix
        self.name = name or unique("f")
        self.urls = list(urls)
        self.agents = []
        for i in range(n):
            device = f"{self.name}-{i:03d}"
            cmds = commands if commands is not None else default_commands((codes or {}).get(i, 0))
            groups = [self.group(i % 2), self.group("all")]
            self.agents.append(FleetAgent(os.path.join(self.dir, device), device,
                                          self.urls[i % len(self.urls)], prefix, groups, cmds,
                                          config, log_level))
        self.watchers = []

    def group(self, which):
        return f"{self.name}-g{which}" if isinstance(which, int) else f"{self.name}-{which}"

    @property
    def devices(self):
        return [a.device for a in self.agents]

    def in_group(self, which):
        return [a.device for i, a in enumerate(self.agents) if i % 2 == which]

    def watcher(self, port):
        """A client subscribed to every status of the fleet on the broker at `port`."""
        w = Client(port, prefix=self.prefix, name="fleetwatch")
        w.subscribe(f"{self.prefix}/+/status")
        self.watchers.append(w)
        return w

    def status(self, watcher):
        """device -> its newest status as `watcher` saw it."""
        latest = {}
        for m in watcher.snapshot(f"{self.prefix}/+/status"):
            latest[m.topic.split("/")[-2]] = m.text
        return latest

    def wait_online(self, watcher, devices=None, since=0, timeout=None):
        want = set(devices or self.devices)
        timeout = timeout or (20 + 0.3 * len(want)) * SLOWDOWN

        def online():
            seen = {m.topic.split("/")[-2] for m in watcher.snapshot(f"{self.prefix}/+/status", since)
                    if m.payload == b"online"}
            return want <= seen

        try:
            wait_until(online, timeout, f"{len(want)} agents online", interval=0.2)
        except AssertionError:
            dead = [a for a in self.agents if a.proc and a.proc.poll() is not None]
            detail = "".join(f"\n--- {a.device} exited {a.proc.returncode}:\n{a.log_tail()}"
                             for a in dead[:3])
            raise AssertionError(f"not every agent came online; {len(dead)} exited{detail}")

    def start(self, watcher, batch=25):
        """Starts every agent (in batches, so that 200 start-ups do not starve one another)
        and waits until each is online."""
        since = watcher.mark()
        for i, a in enumerate(self.agents):
            a.start()
            if (i + 1) % batch == 0:
                time.sleep(0.2)
        self.wait_online(watcher, since=since)
        return self

    def stop(self, timeout=20):
        """SIGTERM to every agent; each must exit 0 and leave no process behind. Returns
        a list of problems."""
        problems = []
        live = [a for a in self.agents if a.proc and a.proc.poll() is None]
        for a in live:
            a.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout * SLOWDOWN
        for a in live:
            try:
                rc = a.proc.wait(max(0.1, deadline - time.monotonic()))
                if rc != 0:
                    problems.append(f"{a.device} exited {rc} after SIGTERM:\n{a.log_tail()}")
            except subprocess.TimeoutExpired:
                a.proc.kill()
                a.proc.wait(5)
                problems.append(f"{a.device} did not exit within {timeout}s of SIGTERM")
        for a in self.agents:
            if a.pid:
                for p in session_members(a.pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        for w in self.watchers:
            w.close()
        return problems


def lw(url, prefix, *args, timeout=60, stdin=b""):
    """Runs the linewire client to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWIRE")}
    return subprocess.run([LINEWIRE, "--broker", url, "--prefix", prefix, *args], input=stdin,
                          capture_output=True, timeout=timeout * SLOWDOWN, env=env)


def by_device(stdout):
    """`DEVICE: line` output to {device: [lines]}."""
    out = {}
    for line in stdout.decode(errors="replace").splitlines():
        device, sep, rest = line.partition(": ")
        assert sep, f"a fan-out line without its device prefix: {line!r}"
        out.setdefault(device, []).append(rest)
    return out
