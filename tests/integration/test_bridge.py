"""Fleets across bridged brokers (issue 9): two mosquitto brokers joined by an MQTT 5
bridge on the fleet's prefix (`bridge_protocol_version mqttv50`, which carries user
properties such as `seq`). A client on one broker runs commands on devices attached to
the other, both ways; one `--group` fan-out spans both; presence, retained state and
`last` cross the bridge; the bridge cut for a few seconds mid-run loses and duplicates no
line; a group request that reaches the devices twice (two bridge paths) runs once."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from fleet import LINEWIRE, Fleet, by_device, default_commands, lw
from harness import SLOWDOWN, Broker, Client, free_port, unique, wait_until

PREFIX = "lwbridge"
PER_BROKER = 4

PACED = ["/bin/sh", "-c", 'i=1; while [ $i -le 300 ]; do echo $i; sleep 0.02; i=$((i+1)); done']


@pytest.fixture(scope="module", autouse=True)
def _client_binary():
    if not os.path.exists(LINEWIRE):
        pytest.exit(f"linewire not found at {LINEWIRE} (set LINEWIRE)", returncode=2)


class TcpProxy:
    """A loopback TCP forwarder in front of a broker, so a test can cut a bridge's
    connection (`cut`) without touching either broker."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.refusing = False
        self.cuts = 0
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.refusing:
                    client.close()
                    continue
                self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, seconds):
        """Drops every connection and refuses new ones for `seconds`."""
        with self.lock:
            self.refusing = True
            conns, self.conns = self.conns, []
            self.cuts += 1
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        time.sleep(seconds)
        with self.lock:
            self.refusing = False

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut(0)


def bridge_lines(name, port, topics):
    return [
        "",
        f"connection {name}",
        f"address 127.0.0.1:{port}",
        "bridge_protocol_version mqttv50",
        f"remote_clientid {name}",
        # A persistent bridge session: what is published while the bridge is down waits
        # on the other side (QoS 1) instead of being lost.
        "cleansession false",
        "restart_timeout 1",
        "keepalive_interval 5",
        "notifications false",
        "try_private true",
    ] + [f"topic {t}" for t in topics]


@pytest.fixture(scope="module")
def bridged(tmp_path_factory):
    """Broker A; broker B bridged to A through a proxy on `{PREFIX}/#`; agents on both."""
    d = tmp_path_factory.mktemp("bridged")
    a = Broker(d / "a", name="mosquitto-a").start()
    proxy = TcpProxy(a.port)
    b = Broker(d / "b", name="mosquitto-b",
               extra=bridge_lines(unique("bridge"), proxy.port, [f"{PREFIX}/# both 1"])).start()
    cmds = default_commands()
    cmds["paced"] = {"exec": PACED}
    f = Fleet(d, [a.url, b.url], 2 * PER_BROKER, prefix=PREFIX, commands=cmds)
    f.a, f.b, f.proxy = a, b, proxy
    f.on_a = [ag.device for i, ag in enumerate(f.agents) if i % 2 == 0]
    f.on_b = [ag.device for i, ag in enumerate(f.agents) if i % 2 == 1]
    try:
        wa, wb = f.watcher(a.port), f.watcher(b.port)
        # The bridge is up once a message published on one side shows on the other.
        probe = f"{PREFIX}/_probe/{unique('p')}"
        wb.subscribe(probe)
        pub = Client(a.port, prefix=PREFIX)
        wait_until(lambda: pub.publish(probe, "x", qos=0) and wb.snapshot(probe), 20 * SLOWDOWN,
                   "the bridge to come up", interval=0.3)
        pub.close()
        f.start(wa)
        f.wait_online(wb)  # presence of every agent on both sides
        f.wa, f.wb = wa, wb
        yield f
    finally:
        problems = f.stop()
        proxy.close()
        b.kill()
        a.kill()
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems[:5]), pytrace=False)


def test_run_across_the_bridge_both_ways(bridged):
    f = bridged
    for url, device in ((f.b.url, f.on_a[0]), (f.a.url, f.on_b[0])):
        r = lw(url, PREFIX, "run", device, "seq", "50")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "".join(f"{i}\n" for i in range(1, 51)).encode()
        r = lw(url, PREFIX, "run", device, "code")
        assert r.returncode == 0 and r.stdout == f"{device}\n".encode(), r.stderr


def test_group_fan_out_spans_both_brokers(bridged):
    f = bridged
    for url in (f.a.url, f.b.url):
        r = lw(url, PREFIX, "run", "--group", f.group("all"), "code")
        assert r.returncode == 0, r.stderr
        out = by_device(r.stdout)
        assert set(out) == set(f.devices), set(f.devices) ^ set(out)
        assert all(lines == [d] for d, lines in out.items())
        r = lw(url, PREFIX, "run", "--all", "uptime")
        assert r.returncode == 0, r.stderr
        assert set(by_device(r.stdout)) == set(f.devices)


def test_ls_presence_and_last_cross_the_bridge(bridged):
    f = bridged
    victim = f.agents[0]  # on A
    # `last` is retained on both sides.
    assert lw(f.a.url, PREFIX, "run", victim.device, "seq", "7").returncode == 0
    c = Client(f.b.port, prefix=PREFIX)
    try:
        topic = f"{PREFIX}/{victim.device}/cmd/seq/last"
        wait_until(lambda: [m for m in c.fresh_retained(topic) if m.payload == b"7"], 10 * SLOWDOWN,
                   "`last` = 7 retained on broker B", interval=0.3)
    finally:
        c.close()
    for url in (f.a.url, f.b.url):
        docs = {d["device"]: d for d in json.loads(lw(url, PREFIX, "ls", "--json").stdout)}
        assert set(docs) == set(f.devices)
        assert all(docs[d]["status"] == "online" for d in f.devices)
    # A device killed on A: its last will reaches B, retained.
    since = f.wb.mark()
    victim.kill()
    f.wb.wait_msg(f"{PREFIX}/{victim.device}/status", lambda m: m.payload == b"offline", since,
                  10 * SLOWDOWN, "the last will across the bridge")
    docs = {d["device"]: d for d in json.loads(lw(f.b.url, PREFIX, "ls", "--json").stdout)}
    assert docs[victim.device]["status"] == "offline"
    r = lw(f.b.url, PREFIX, "run", victim.device, "uptime")
    assert r.returncode == 255 and b"offline" in r.stderr, r.stderr
    since = f.wb.mark()
    victim.start()
    f.wait_online(f.wb, [victim.device], since)


def cut_mid_run(f, url, device):
    """Runs `paced` on `device` through the client on `url`, cutting the bridge for 3 s
    once the first line has crossed. Returns (status, stdout lines, stderr)."""
    # Unbuffered: communicate() below reads the pipe's fd directly, so whatever a buffered
    # readline() had read beyond the first line would be lost to the test (it was: a
    # "missing" line 2 that the client had printed).
    proc = subprocess.Popen([LINEWIRE, "--broker", url, "--prefix", PREFIX, "run", "--no-stdin",
                             device, "paced"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0)
    first = proc.stdout.readline()
    assert first == b"1\n", proc.stderr.read()
    cuts = f.proxy.cuts
    f.proxy.cut(3 * SLOWDOWN)
    assert f.proxy.cuts == cuts + 1
    out, err = proc.communicate(timeout=60 * SLOWDOWN)
    return proc.returncode, (first + out).decode().splitlines(), err


def test_bridge_cut_mid_run_loses_and_duplicates_nothing(bridged):
    """The device on B, which runs the bridge: its lines leave B through the bridge's
    own queue (a local persistent session), wait there while the bridge is down, and
    reach the client on A once, in order."""
    f = bridged
    status, lines, err = cut_mid_run(f, f.a.url, f.on_b[1])
    assert status == 0, err
    assert lines == [str(i) for i in range(1, 301)], err
    assert b"did not arrive" not in err and b"more than the run wrote" not in err, err


def test_bridge_cut_lines_lost_on_the_way_are_replayed(bridged):
    """The device on A: its lines reach B through the bridge's subscription on A, whose
    session mosquitto 2.0 does not keep (an MQTT 5 bridge sends no Session Expiry
    Interval, so `cleansession false` does nothing: mosquitto issues #2424, #2980). What
    A receives while the bridge is down is lost on the way; the client sees the gap at
    the final state and asks the agent's history for it (SPEC §12), across the bridge."""
    f = bridged
    status, lines, err = cut_mid_run(f, f.b.url, f.on_a[1])
    assert status == 0, err
    assert lines == [str(i) for i in range(1, 301)], err
    assert b"did not arrive" not in err and b"were lost" not in err, err


def test_group_accounting_across_the_bridge(bridged):
    """Issue 18 across brokers: a member on B killed (its last will crosses the bridge) is
    targeted from either side, reported `offline, not run` and counted 255; `--online`
    skips it; --json's summary says the same."""
    f = bridged
    victim = next(a for a in f.agents if a.device == f.on_b[0])
    since = f.wa.mark()
    victim.kill()
    try:
        f.wa.wait_msg(f"{PREFIX}/{victim.device}/status", lambda m: m.payload == b"offline",
                      since, 10 * SLOWDOWN, "the victim's last will on A")
        n = len(f.devices)
        for url in (f.a.url, f.b.url):
            r = lw(url, PREFIX, "run", "--group", f.group("all"), "code")
            assert r.returncode == 255, r.stderr
            assert set(by_device(r.stdout)) == set(f.devices) - {victim.device}
            err = r.stderr.decode()
            assert f"{victim.device}: offline, not run" in err
            assert err.rstrip().splitlines()[-1] == (
                f"linewire: {n} targeted: {n - 1} ok, 0 failed, 1 offline, 0 no answer")
            r = lw(url, PREFIX, "run", "--group", f.group("all"), "--online", "--json", "code")
            assert r.returncode == 0, r.stderr
            summary = json.loads(r.stdout.decode().splitlines()[-1])["summary"]
            assert summary == {"targeted": n - 1, "ok": n - 1, "failed": 0, "offline": 0,
                               "no_answer": 0, "not_run": 0, "skipped": 1, "exit_status": 0}
    finally:
        since = f.wb.mark()
        victim.start()
        f.wait_online(f.wb, [victim.device], since)


def test_duplicated_group_request_over_two_bridge_paths_runs_once(tmp_path):
    """The devices' broker D has two bridges to the client's broker C that both import
    group requests (a redundant path, as a bridge loop would make): every device gets the
    request twice. The run id makes the second a `duplicate_id`: one run per device."""
    c = Broker(tmp_path / "c", name="mosquitto-c").start()
    p = PREFIX
    main_topics = [f"{p}/_client/# out 1", f"{p}/+/status out 1", f"{p}/+/info out 1",
                   f"{p}/+/run/# both 1", f"{p}/+/cmd/# both 1", f"{p}/_group/# in 1"]
    d = Broker(tmp_path / "d", name="mosquitto-d",
               extra=bridge_lines(unique("main"), c.port, main_topics)
               + bridge_lines(unique("second"), c.port, [f"{p}/_group/# in 1"])).start()
    f = Fleet(tmp_path, [d.url], 3, prefix=p)
    try:
        wd, wc = f.watcher(d.port), f.watcher(c.port)
        f.start(wd)
        f.wait_online(wc)
        wd.subscribe(f"{p}/_group/#")
        wd.subscribe(f"{p}/+/run/#")
        since = wd.mark()
        # Both bridges must be up before the request: wait until a probe arrives twice.
        pub = Client(c.port, prefix=p)

        def both_up():
            probe = f"{p}/_group/{unique('probe')}/cmd/none/start"
            pub.publish(probe, "{", qos=1)
            try:
                return wait_until(lambda: len(wd.snapshot(probe, since)) >= 2, 1.0 * SLOWDOWN,
                                  "a probe twice")
            except AssertionError:
                return False

        wait_until(both_up, 30 * SLOWDOWN, "both bridges up", interval=0.1)
        pub.close()
        rid = unique("dup")
        since = wd.mark()
        r = lw(c.url, p, "run", "--id", rid, "--group", f.group("all"), "code")
        assert r.returncode == 0, r.stderr
        out = by_device(r.stdout)
        assert set(out) == set(f.devices) and all(v == [k] for k, v in out.items()), r.stdout
        group_topic = f"{p}/_group/{f.group('all')}/cmd/code/start"
        assert len(wd.snapshot(group_topic, since)) == 2, "the request did not arrive twice"
        for device in f.devices:
            topic = f"{p}/{device}/run/{rid}/state"
            wd.wait_msg(topic, lambda m: m.payload and json.loads(m.payload)["state"] == "exited",
                        since, 10 * SLOWDOWN, f"{device}'s final state")
            states = [json.loads(m.payload) for m in wd.snapshot(topic, since) if m.payload]
            assert [s["state"] for s in states] == ["running", "exited"], (device, states)
    finally:
        problems = f.stop()
        d.kill()
        c.kill()
        assert not problems, problems
