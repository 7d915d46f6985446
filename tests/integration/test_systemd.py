"""Issue 6, systemd: the unit verifies clean with `systemd-analyze verify`, the sysusers
and tmpfiles snippets apply, and linewired speaks sd_notify over a real unix datagram
socket given as NOTIFY_SOCKET: READY=1 only once connected and subscribed, WATCHDOG=1
over and over at half of WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 on
SIGTERM.

None of this needs systemd running: CI's containers have no systemd as PID 1, so the unit
is verified against a scratch root (`--root`, `--man=no`, `--generators=no`) holding a
copy of the system's units, /bin/kill and the real linewired."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import LINEWIRED, QUIET, SLOWDOWN, WAIT, unique

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEMD_DIR = os.path.join(HERE, "..", "..", "systemd")
UNIT = os.path.join(SYSTEMD_DIR, "linewired.service")


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (scripts/install-deps.sh installs systemd)")
    return path


def scratch_root(tmp_path, unit_text):
    root = tmp_path / "root"
    units = root / "usr/lib/systemd"
    units.mkdir(parents=True)
    system_units = "/lib/systemd/system" if os.path.isdir("/lib/systemd/system") else \
        "/usr/lib/systemd/system"
    shutil.copytree(system_units, units / "system", symlinks=True)
    for d in ("bin", "usr/bin", "etc/systemd/system"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "bin/kill")
    shutil.copy2(LINEWIRED, root / "usr/bin/linewired")
    (root / "etc/systemd/system/linewired.service").write_text(unit_text)
    return root


def verify(tmp_path, unit_text):
    root = scratch_root(tmp_path, unit_text)
    return subprocess.run([tool("systemd-analyze"), "verify", "--man=no", "--generators=no",
                           f"--root={root}", "/etc/systemd/system/linewired.service"],
                          capture_output=True, text=True, timeout=60 * SLOWDOWN)


def unit_keys():
    keys = {}
    for line in open(UNIT):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            keys.setdefault(k, []).append(v)
    return keys


def test_unit_verifies_clean(tmp_path):
    r = verify(tmp_path, open(UNIT).read())
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r
    k = unit_keys()
    for key, value in {"Type": "notify", "Restart": "on-failure", "User": "linewire",
                       "StateDirectory": "linewire", "ConfigurationDirectory": "linewire",
                       "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes"}.items():
        assert k.get(key) == [value], (key, k.get(key))
    assert k.get("WatchdogSec"), k


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a typo'd key is reported."""
    text = open(UNIT).read().replace("Type=notify", "Type=notify\nWatchdgSec=5s")
    r = verify(tmp_path, text)
    assert "WatchdgSec" in r.stdout + r.stderr, r


def test_sysusers_and_tmpfiles_apply(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for f in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / f).touch()
    r = subprocess.run([tool("systemd-sysusers"), f"--root={root}",
                        os.path.join(SYSTEMD_DIR, "linewire.sysusers")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    passwd = (root / "etc/passwd").read_text()
    assert passwd.startswith("linewire:x:") and ":/var/lib/linewire:/usr/sbin/nologin" in passwd
    r = subprocess.run([tool("systemd-tmpfiles"), f"--root={root}", "--create",
                        os.path.join(SYSTEMD_DIR, "linewire.tmpfiles")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    st = os.stat(root / "var/lib/linewire")
    assert oct(st.st_mode & 0o777) == oct(0o750)
    uid = int(passwd.split(":")[2])
    assert st.st_uid == uid


class Systemd:
    """The manager's end of NOTIFY_SOCKET: a bound unix datagram socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages = []

    def receive(self, pred, timeout=WAIT, what="a message"):
        """Reads datagrams until one satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if pred(m):
                    self.messages.remove(m)
                    return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def quiet(self, pred, duration):
        try:
            m = self.receive(pred, duration)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {m!r}")

    def close(self):
        self.sock.close()


def fields(message):
    return dict(line.split("=", 1) for line in message.splitlines() if "=" in line)


@pytest.fixture(params=["path", "abstract"])
def systemd(request, tmp_path):
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        s = Systemd(path)
        s.env = path
    else:
        name = unique("lw-notify-")
        s = Systemd("\0" + name)
        s.env = "@" + name
    yield s
    s.close()


def test_ready_watchdog_reload_stopping(agent, make_broker, systemd):
    """READY=1 only after the broker is reached and the subscriptions acknowledged;
    WATCHDOG=1 repeats; SIGHUP is framed by RELOADING=1 and READY=1; SIGTERM says
    STOPPING=1 and the agent exits 0."""
    broker = make_broker()
    a = agent(commands={"echo": {"exec": ["/bin/echo", "hi"]}}, broker=broker, start=False,
              config={"broker": {"reconnect": {"min": "200ms", "max": "500ms"}}},
              env={"NOTIFY_SOCKET": systemd.env, "WATCHDOG_USEC": str(int(1e6 * SLOWDOWN))})
    a.watch = a.client(name="watch")  # the harness's watcher, made while it can connect
    broker.stop()  # not there yet: the agent must not claim to be ready
    a.start(wait_online=False)
    systemd.quiet(lambda m: "READY=1" in m, 1.5 * SLOWDOWN)
    broker.fixed_port = True  # the agent's config names this port
    broker.start()
    ready = systemd.receive(lambda m: "READY=1" in m, what="READY=1")
    assert fields(ready)["READY"] == "1"
    # Ready means subscribed: a request sent right now is served.
    c = a.client()
    assert c.run("echo").out == [b"hi"]

    for _ in range(3):
        systemd.receive(lambda m: m == "WATCHDOG=1", what="WATCHDOG=1")

    a.send_signal(signal.SIGHUP)
    reloading = systemd.receive(lambda m: "RELOADING=1" in m, what="RELOADING=1")
    assert int(fields(reloading)["MONOTONIC_USEC"]) > 0
    systemd.receive(lambda m: "READY=1" in m, what="READY=1 after the reload")

    a.send_signal(signal.SIGTERM)
    systemd.receive(lambda m: "STOPPING=1" in m, what="STOPPING=1")
    assert a.stop(sig=None) == 0


def test_watchdog_for_another_pid_is_not_ours(agent, systemd):
    """WATCHDOG_PID naming another process: the variables were inherited, stay quiet."""
    a = agent(env={"NOTIFY_SOCKET": systemd.env, "WATCHDOG_USEC": "200000",
                   "WATCHDOG_PID": "1"})
    systemd.receive(lambda m: "READY=1" in m, what="READY=1")
    systemd.quiet(lambda m: "WATCHDOG" in m, max(QUIET, 1.0))
    assert a.proc.poll() is None


def test_no_notify_socket_no_messages(agent):
    """Without NOTIFY_SOCKET the agent runs as before (and WATCHDOG_USEC alone is ignored)."""
    a = agent(env={"WATCHDOG_USEC": "100000"})
    c = a.client()
    assert c.run("echo").out == [b"hello"]
