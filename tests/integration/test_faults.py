"""Network faults between the agent and its broker (SPEC §2 seq, §4 final state, §5 no
leaked descriptors, §6 reconnect with back-off): latency, a Wi-Fi-like stall, a reset
and a partition, made by faultproxy.FaultProxy (this kernel has no netem) between
linewired and a real mosquitto. The test's own client talks to the broker directly,
so only the agent's path is faulted.

One run prints a numbered, timestamped line 30 times a second through each fault.
After dedupe by `seq` every line 1..N must arrive exactly once with its content, in
order but for a reorder within the agent's in-flight window across a reconnect; the
final state says exited with lines == N; the agent's open fds come back to what they
were; each loss of the connection is logged once, and the retries of a partition no
more often than the back-off allows.

What a user sees, fault by fault (measured here; the tests hold these):
  - 200 ms each way: nothing but latency; no reconnect. (QoS 1 output is limited to 16
    publishes in flight, so to 16 lines per round trip: ~40 lines/s at 400 ms.)
  - a 5 s stall with the default keepalive (30 s): nothing but 5 s of delay.
  - a 5 s stall with keepalive 2s: usually nothing either (see the test); sometimes
    `offline` (the broker's last will), a reconnect, one line sent twice.
  - a 5 s stall with keepalive 1s: the agent gives the link up ~3.3 s in, `offline`,
    and is back as soon as the stall ends; one line sent twice.
  - a reset: `offline`, back ~2 s later (a 0.5-1.5 s back-off + ~1 s in Paho).
  - a 10 s partition: four retries, back 4-10 s after it (the back-off's 4-12 s step).
  In every case nothing is lost.

The figures (lines lost, duplicates, reconnect log lines, recovery times) are printed
with a `FIGURE` prefix: `pytest -s` or `ctest -V` shows them.
"""

import datetime
import os
import re
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from faultproxy import FaultProxy, wait_healed  # noqa: E402
from harness import SLOWDOWN, WAIT, unique, wait_until  # noqa: E402
from procfs import zombie_children  # noqa: E402

RATE = 30          # lines a second
BEFORE = 2.0       # seconds of output before the fault
WINDOW = 32        # the furthest a first arrival may come ahead of its place (durability)
# Paho C 1.3.11 adds ~1 s to every reconnect: its receive thread sees the new socket
# connected but looks at it again only after its 1 s poll timeout (strace: POLLOUT
# ready at +0.004 s, SO_ERROR read at +1.005 s; upstream eclipse-paho/paho.mqtt.c#1458).
PAHO_CONNECT = 1.1

TICKER = """
import sys, time
n, rate = int(sys.argv[1]), float(sys.argv[2])
t0 = time.monotonic()
for i in range(1, n + 1):
    sys.stdout.write(f"line {i} {time.monotonic():.4f}\\n")
    sys.stdout.flush()
    d = t0 + i / rate - time.monotonic()   # on a schedule: no drift
    if d > 0:
        time.sleep(d)
"""
LINE_RE = re.compile(rb"^line (\d+) (\d+\.\d+)$")


def figure(text):
    print(f"FIGURE {text}", flush=True)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def max_retry_lines(outage, rmin=1.0, rmax=60.0):
    """The most "not connected ... retrying" lines a broker unreachable for `outage`
    seconds can give with the agent's back-off (mqtt_client.cpp schedule_retry: the
    delay is drawn from 0.5x to 1.5x of a back-off that doubles from reconnect.min to
    reconnect.max): one when the connection is lost, one per attempt that fails, the
    attempts as early as the jitter allows."""
    t, backoff, lines = 0.0, rmin, 1
    while True:
        t += backoff / 2
        backoff = min(backoff * 2, rmax)
        if t >= outage:
            return lines
        lines += 1


@pytest.fixture
def proxy(broker):
    p = FaultProxy(broker.port)
    yield p
    p.close()


def _agent(agent, broker, proxy, prog, keepalive=None):
    ticker = prog("ticker.py", TICKER, shebang="/usr/bin/python3")
    b = {"url": f"mqtt://127.0.0.1:{proxy.port}"}
    if keepalive:
        b["keepalive"] = keepalive
    return agent(commands={"tick": {"exec": [ticker], "args": {"pattern": "[0-9.]+", "max": 2}}},
                 config={"broker": b})


LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \S+ (.*)$")


def _log_events(a, since):
    """(wall-clock time, kind, text) of the agent's connection log lines after offset
    `since`: kind "lost" (transports/mqtt/mqtt_transport.cpp: "mqtt: connection
    lost...; reconnecting"), "retry" (mqtt_client.cpp schedule_retry: "mqtt: not
    connected to URL: WHY; retrying in N ms"), "connected"."""
    events = []
    for line in a.log_text()[since:].splitlines():
        m = LOG_RE.match(line)
        if not m:
            continue
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        text = m.group(2)
        for kind, needle in (("lost", "mqtt: connection lost"), ("retry", "mqtt: not connected to "),
                             ("connected", "mqtt: connected to ")):
            if text.startswith(needle):
                events.append((when, kind, text))
    return events


def _log_counts(events):
    counts = {"lost": 0, "retry": 0, "connected": 0}
    for _, kind, _ in events:
        counts[kind] += 1
    return counts


def _faulted_run(agent, broker, proxy, prog, name, fault, n, keepalive=None):
    """Starts a run of `n` lines, lets BEFORE seconds of them arrive, calls fault() (which
    returns when the fault is over, or at once for a cut) and checks what arrived.
    Returns the figures."""
    a = _agent(agent, broker, proxy, prog, keepalive)
    c = a.client()
    time.sleep(0.3)
    base_fds = fds(a.pid)
    log_mark = len(a.log_text())
    status_mark = c.mark()
    rid = unique("f")
    run = c.run("tick", args=[str(n), str(RATE)], id=rid, wait=False)
    run.wait_out_count(int(BEFORE * RATE), WAIT)
    t_fault, wall_fault = time.monotonic(), time.time()
    fault()
    t_heal, wall_heal = time.monotonic(), time.time()
    final_msg = c.wait_msg(f"{run.prefix_topic}/state",
                           lambda m: bool(m.payload) and m.json().get("state") != "running",
                           run.since, n / RATE + 40 * SLOWDOWN, f"the final state of {rid}",
                           abort=a.problem)
    time.sleep(0.5)  # stragglers of a resend, if any, would come now
    final = final_msg.json()
    out = run.out_msgs

    # dedupe by seq, check each line's content against its seq
    seqs = [m.seq for m in out]
    assert None not in seqs, "an out message without seq"
    first = {}
    for m in out:
        mt = LINE_RE.match(m.payload)
        assert mt and int(mt.group(1)) == m.seq, f"seq {m.seq} carries {m.payload!r}"
        if m.seq in first:
            assert m.payload == first[m.seq].payload, f"seq {m.seq} came twice, different"
        else:
            first[m.seq] = m
    missing = sorted(set(range(1, n + 1)) - set(first))
    extra = sorted(set(first) - set(range(1, n + 1)))
    dups = len(seqs) - len(first)
    order = [m.seq for m in sorted(first.values(), key=lambda m: m.index)]
    highest, displaced = 0, []
    for s in order:
        if s < highest:
            displaced.append(highest - s)
        highest = max(highest, s)
    late = [m.seq for m in first.values() if m.index > final_msg.index]

    # recovery: from the fault's end to the first line printed after it (or the final
    # state, when the program had finished by then), and to the agent's `online`
    stamps = {s: float(LINE_RE.match(m.payload).group(2)) for s, m in first.items()}
    fresh = [m.time for s, m in first.items() if stamps[s] >= t_heal]
    recovered = min(fresh + [final_msg.time]) - t_heal
    statuses = [m for m in c.snapshot(f"{a.base}/status", status_mark)]
    offline = [m for m in statuses if m.payload == b"offline"]
    online_after = [m.time - t_heal for m in statuses if m.payload == b"online" and m.time >= t_fault]
    during = [m.time - stamps[s] for s, m in first.items() if t_fault <= stamps[s] < t_heal]
    lat_before = sorted(m.time - stamps[s] for s, m in first.items() if stamps[s] < t_fault)

    # the agent's descriptors back where they were once the run is over
    n_fds = base_fds
    deadline = time.monotonic() + 5 * SLOWDOWN
    while time.monotonic() < deadline:
        n_fds = fds(a.pid)
        if n_fds <= base_fds:
            break
        time.sleep(0.1)
    events = _log_events(a, log_mark)
    logs = _log_counts(events)
    lost_at = [w - wall_fault for w, k, _ in events if k == "lost"]
    back_at = [w - wall_heal for w, k, _ in events if k == "connected"]
    delays = [int(x) for _, k, t in events if k == "retry"
              for x in re.findall(r"retrying in (\d+) ms", t)]
    status_now = [m.payload for m in c.fresh_retained(f"{a.base}/status")]
    counters = proxy.counters()
    figs = {"lost": len(missing), "dups": dups, "displaced": max(displaced, default=0),
            "recovered": recovered, "online_after": online_after, "offline": len(offline),
            "logs": logs, "fds": (base_fds, n_fds), "late": late, "final": final,
            "during_max": max(during, default=0.0),
            "during_p50": sorted(during)[len(during) // 2] if during else None,
            "lat_p50_before": lat_before[len(lat_before) // 2] if lat_before else None,
            "proxy": counters, "fault_s": t_heal - t_fault, "lost_at": lost_at,
            "back_at": back_at, "delays": delays, "status_now": status_now}
    figure(f"{name}: {n} lines printed, {len(first)} received, {len(missing)} lost, {dups} "
           f"duplicates, {len(displaced)} first arrivals out of order (at most "
           f"{figs['displaced']} seq behind); fault {figs['fault_s']:.1f}s; output live again "
           f"{recovered:.2f}s after its end; status offline x{len(offline)}, online at "
           f"{', '.join(f'{t:+.2f}s' for t in online_after) or '-'} (from the fault's end); "
           f"agent log: {logs['lost']} 'connection lost' (at "
           f"{', '.join(f'{t:+.2f}s' for t in lost_at) or '-'} from the fault's start), "
           f"{logs['retry']} 'retrying' (delays {delays} ms), {logs['connected']} 'connected' "
           f"(at {', '.join(f'{t:+.2f}s' for t in back_at) or '-'} from its end); fds "
           f"{base_fds} -> {n_fds}; proxy {counters}")

    assert final["state"] == "exited" and final.get("exit_code") == 0, final
    assert final["lines"] == n and final.get("dropped", 0) == 0, final
    assert not missing, f"{len(missing)} lines lost, e.g. {missing[:20]}"
    assert not extra, f"seqs past the end: {extra[:10]}"
    assert max(displaced, default=0) <= WINDOW, f"lines far out of order: {displaced[:20]}"
    assert not late, f"lines first seen after the final state (SPEC §4): {late[:10]}"
    assert n_fds <= base_fds, f"agent fds {base_fds} -> {n_fds} after the fault"
    assert not zombie_children(a.pid)
    assert a.proc.poll() is None
    # what a dashboard shows afterwards: online (a last will never lands after `online`)
    assert status_now == [b"online"], f"retained status after the fault: {status_now}"
    assert logs["lost"] == logs["connected"], f"lost {logs['lost']} times, back {logs['connected']}"
    return figs


def test_delay_200ms_each_way(proxy, agent, broker, prog):
    """200 ms each way (a slow uplink): nothing lost, nothing twice, no reconnect. The
    lines keep up with 30 a second but arrive ~0.45 s late (p50), not 0.2 s: QoS 1 with
    16 publishes in flight and a 400 ms round trip carries at most 40 lines a second, so
    a line waits for a slot (measured with `seq 1 1000`: 129, 74 and 38 lines/s at 50,
    100 and 200 ms each way)."""
    def fault():
        proxy.delay(200)
        time.sleep(4.0)
        proxy.delay(0)
    f = _faulted_run(agent, broker, proxy, prog, "delay 200ms each way", fault, n=200)
    figure(f"delay 200ms each way: line latency before {f['lat_p50_before'] * 1000:.0f} ms "
           f"(p50), while delayed {f['during_p50'] * 1000:.0f} ms (p50), at most "
           f"{f['during_max'] * 1000:.0f} ms")
    assert f["dups"] == 0 and f["logs"]["lost"] == 0 and f["offline"] == 0, f
    assert 0.2 <= f["during_max"] < 2.0 * SLOWDOWN, f


def test_stall_5s_default_keepalive(proxy, agent, broker, prog):
    """A 5 s stall (Wi-Fi dropout) with the default keepalive (30 s): nobody notices but
    by the delay. The connection survives, no reconnect, no `offline`, nothing lost or
    sent twice; what was printed meanwhile arrives at once after it."""
    def fault():
        proxy.stall(5.0)
        wait_healed(proxy, 10)
    f = _faulted_run(agent, broker, proxy, prog, "stall 5s, keepalive 30s (default)", fault,
                     n=int((BEFORE + 5 + 2) * RATE))
    assert f["logs"] == {"lost": 0, "retry": 0, "connected": 0}, f
    assert f["offline"] == 0 and f["dups"] == 0, f
    assert f["during_max"] >= 4.0, "lines printed during the stall arrived before its end?"
    assert f["recovered"] < 1.0 * SLOWDOWN, f


def test_stall_5s_keepalive_2s(proxy, agent, broker, prog):
    """The same stall with keepalive 2s, longer than the keepalive but not always seen:
    mosquitto 2.0 drops a silent client 1.5 x keepalive after its last packet but
    looks only every ~6 s (src/keepalive.c), and Paho C 1.3.11 sends its PINGREQ only
    once nothing was sent *and* nothing received for a keepalive (the agent sends until
    its 16 in-flight publishes are unacknowledged, ~0.5 s at 30 lines/s), then gives up
    1.5 x keepalive after it: ~5.5 s. So either nobody notices (as with 30 s), or the
    broker's sweep drops the agent (its last will: `offline`) and the agent reconnects
    when bytes flow again. Both must lose nothing, log the loss at most once and end
    `online`."""
    def fault():
        proxy.stall(5.0)
        wait_healed(proxy, 10)
    f = _faulted_run(agent, broker, proxy, prog, "stall 5s, keepalive 2s", fault,
                     n=int((BEFORE + 5 + 3) * RATE), keepalive="2s")
    noticed = "by nobody" if not f["logs"]["lost"] else (
        "by the broker (last will), then the agent" if f["offline"] else "by the agent")
    figure(f"stall 5s, keepalive 2s: noticed {noticed}")
    assert f["logs"]["lost"] <= 1 and f["logs"]["retry"] <= f["logs"]["lost"], f
    assert f["offline"] == f["logs"]["lost"], f
    assert f["recovered"] < (1.5 + PAHO_CONNECT + 1.0) * SLOWDOWN, f


def test_stall_5s_keepalive_1s(proxy, agent, broker, prog):
    """A 5 s stall with keepalive 1s is always noticed by the agent itself: its PINGREQ
    goes ~1.5 s in, and it gives up 1.5 s later (~3 s, ~3.5 s at most), logs the loss
    once, retries once (the attempt is held by the stall like any packet) and is back
    when the stall ends; what was in flight is sent again (duplicates, never a loss)."""
    def fault():
        proxy.stall(5.0)
        wait_healed(proxy, 10)
    f = _faulted_run(agent, broker, proxy, prog, "stall 5s, keepalive 1s", fault,
                     n=int((BEFORE + 5 + 3) * RATE), keepalive="1s")
    assert f["logs"]["lost"] == 1 and f["logs"]["retry"] == 1, f
    assert 2.0 <= f["lost_at"][0] <= 4.0 * SLOWDOWN, f"noticed {f['lost_at'][0]:.2f}s in"
    assert f["offline"] == 1 and len(f["online_after"]) == 1, f
    assert f["recovered"] < (PAHO_CONNECT + 1.5) * SLOWDOWN, f


def test_cut(proxy, agent, broker, prog):
    """Every connection reset (RST): the agent reconnects after its first back-off
    (0.5-1.5 s, plus Paho's ~1 s), once, logged once; `offline` by the last will, then
    `online`."""
    def fault():
        assert proxy.cut() >= 1
    f = _faulted_run(agent, broker, proxy, prog, "cut (RST)", fault, n=int((BEFORE + 4) * RATE),
                     keepalive="2s")
    assert f["logs"]["lost"] == 1 and f["logs"]["retry"] == 1 and f["logs"]["connected"] == 1, f
    assert f["offline"] == 1 and len(f["online_after"]) == 1, f
    assert f["online_after"][0] < (1.5 + PAHO_CONNECT + 1.0) * SLOWDOWN, f
    assert f["recovered"] < (1.5 + PAHO_CONNECT + 1.0) * SLOWDOWN, f


def test_partition_10s(proxy, agent, broker, prog):
    """10 s in which the broker cannot be reached (connections reset, new ones too):
    the agent retries with back-off (1 s doubling, jitter 0.5-1.5x: at most
    max_retry_lines(10) = 5 retry lines, usually 3 or 4), the connection loss is
    logged once, and after the partition it comes back by itself, within one back-off
    step, with every line."""
    def fault():
        proxy.partition(10.0)
        wait_healed(proxy, 15)
    f = _faulted_run(agent, broker, proxy, prog, "partition 10s", fault,
                     n=int((BEFORE + 10 + 3) * RATE), keepalive="2s")
    assert f["logs"]["lost"] == 1, f"the loss of the connection logged {f['logs']['lost']} times"
    assert 2 <= f["logs"]["retry"] <= max_retry_lines(10.0), f
    assert f["logs"]["connected"] == 1, f
    assert f["offline"] == 1 and len(f["online_after"]) == 1, f
    # the fourth attempt can fail just before the end (0.5 + 1 + 2 + 4 s at the least,
    # plus Paho's second each): the fifth then comes 8-24 s later
    assert f["online_after"][0] < (24.0 + PAHO_CONNECT + 0.5) * SLOWDOWN, f
    assert f["proxy"]["refused"] == f["logs"]["retry"] - 1, f


def test_proxy_itself():
    """The proxy: bytes both ways through delay and stall, a cut is a reset, a partition
    refuses, the counters count, and close() leaves no thread or socket."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    handlers = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def echo(conn=conn):
                with conn:
                    try:
                        while True:
                            d = conn.recv(65536)
                            if not d:
                                return
                            conn.sendall(d)
                    except OSError:
                        return
            t = threading.Thread(target=echo, daemon=True)
            handlers.append(t)
            t.start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    fd_before = len(os.listdir("/proc/self/fd"))
    threads_before = {t.ident for t in threading.enumerate()}
    p = FaultProxy(port)
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"a")
        assert s.recv(8) == b"a"
        p.delay(100)
        t0 = time.monotonic()
        s.sendall(b"b")
        assert s.recv(8) == b"b"
        assert 0.2 <= time.monotonic() - t0 < 1.0
        p.delay(0)
        p.stall(0.5)
        t0 = time.monotonic()
        s.sendall(b"c")
        assert s.recv(8) == b"c"
        assert 0.45 <= time.monotonic() - t0 < 1.5
        assert p.cut() == 1
        with pytest.raises(ConnectionResetError):
            s.recv(8)
        s.close()
        p.partition(0.5)
        with pytest.raises(ConnectionResetError):
            with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                s.sendall(b"x")
                s.recv(8)
        wait_until(p.healed, 3, "the partition to end")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"d")
        assert s.recv(8) == b"d"
        s.close()
        c = p.counters()
        assert c["accepted"] == 2 and c["refused"] == 1 and c["reset"] == 1, c
        assert c["bytes_up"] == 4 and c["bytes_down"] == 4, c
    finally:
        p.close()
        srv.close()
    wait_until(lambda: {t.ident for t in threading.enumerate()
                        if t not in handlers and t is not server} <= threads_before, 3,
               "the proxy's thread to end")
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fd_before, 3,
               "the proxy's sockets to close")
