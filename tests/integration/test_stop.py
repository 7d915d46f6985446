"""SPEC §6: SIGTERM/SIGINT at any moment — during start-up, while a connection attempt
hangs or is refused, while the broker is away — ends the agent with exit 0 within
`kill_grace` + 1 s (with no runs: 1 s, plus a small allowance), and the log names the
signal. A refusing broker is logged with the reason in words; `broker.protocol: auto`
falls back to 3.1.1 when the broker refuses MQTT 5.

Brokers that misbehave are fakebroker.FakeBroker (silent, refusing, 3.1.1-only proxy)
or a real mosquitto that is frozen (SIGSTOP) or refuses anonymous clients. The harness
Agent's watch client always talks to a plain, working mosquitto (the `broker` fixture);
the agent's own `broker.url` points at the broker under test.

Every stop is timed from the signal to the exit with time.monotonic; `pytest -s` prints
the times, and a summary at the end of the module.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from fakebroker import FakeBroker
from harness import SLOWDOWN, WAIT, Client, pid_alive, read_text, session_members, unique, wait_until

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)

# With no runs the agent has nothing to wait for: 1 s (SPEC §6), plus an allowance.
ALLOWANCE = 0.5
NO_RUN_BOUND = (1.0 + ALLOWANCE) * SLOWDOWN

STOP_TIMES = []  # (test, signal, exit status, seconds, bound)


@pytest.fixture(scope="module", autouse=True)
def _stop_time_summary():
    yield
    if STOP_TIMES:
        print("\n----- test_stop: measured stop times (signal -> exit)")
        for name, sig, rc, elapsed, bound in STOP_TIMES:
            print(f"  {name:<58} {sig:<7} exit {describe(rc):<26} {elapsed:6.3f}s (bound {bound:.2f}s)")


@pytest.fixture
def fake():
    """Factory: fake(mode, **kw) starts a FakeBroker; all are stopped at teardown, and
    their threads must be gone."""
    fakes = []

    def factory(mode, **kw):
        f = FakeBroker(mode, **kw).start()
        fakes.append(f)
        return f

    yield factory
    for f in fakes:
        f.stop()


# --------------------------------------------------------------------------- helpers


def describe(rc):
    if rc is None:
        return "none"
    if isinstance(rc, int) and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"killed by {name} (shell {128 - rc})"
    return str(rc)


def log_size(a):
    try:
        return os.path.getsize(a.log_path)
    except OSError:
        return 0


def log_since(a, offset):
    """The agent's log from byte `offset` on ("" while there is none)."""
    try:
        with open(a.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def wait_log(a, pattern, offset=0, timeout=WAIT, what=None):
    """Waits until the agent's log (from byte `offset`) matches `pattern` (a regex,
    case-insensitive); fails at once if the agent has exited."""
    rx = re.compile(pattern, re.I)

    def found():
        if a.proc is not None and a.proc.poll() is not None:
            raise AssertionError(f"linewired exited with {describe(a.proc.returncode)} while waiting "
                                 f"for {what or pattern!r}; log:\n{a.log_tail(40)}")
        return rx.search(log_since(a, offset))
    try:
        return wait_until(found, timeout, what or f"/{pattern}/ in the agent's log")
    except AssertionError as e:
        if "timed out" in str(e):
            raise AssertionError(f"{e}; log:\n{a.log_tail(40)}") from None
        raise


def signal_and_time(request, a, sig, bound):
    """Sends `sig` to the running agent and waits (longer than `bound`, so a slow exit is
    measured rather than cut off) for it to exit. Returns (exit status, seconds, log
    written since the signal)."""
    assert a.proc is not None, "the agent is not running"
    early = a.proc.poll()
    assert early is None, (f"linewired exited ({describe(early)}) before the signal; log:\n"
                           f"{a.log_tail(40)}")
    offset = log_size(a)
    t0 = time.monotonic()
    a.proc.send_signal(sig)
    try:
        rc = a.proc.wait(max(3 * bound, bound + 10 * SLOWDOWN))
        elapsed = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        elapsed = time.monotonic() - t0
        a.kill()
        STOP_TIMES.append((request.node.name, sig.name, "hung", elapsed, bound))
        raise AssertionError(f"linewired did not exit within {elapsed:.1f}s of {sig.name} "
                             f"(bound {bound:.2f}s); log:\n{a.log_tail(40)}")
    a.returncodes.append(rc)
    a.proc = None
    STOP_TIMES.append((request.node.name, sig.name, rc, elapsed, bound))
    print(f"\n[stop] {request.node.name}: {sig.name} -> exit {describe(rc)} in {elapsed:.3f}s "
          f"(bound {bound:.2f}s)")
    return rc, elapsed, log_since(a, offset)


def assert_clean_stop(a, sig, rc, elapsed, bound, after):
    """Exit 0, within the bound, the signal named in the log, nothing left running."""
    problems = []
    if rc != 0:
        problems.append(f"exit status {describe(rc)} after {sig.name} (SPEC §6: 0)")
    if elapsed > bound:
        problems.append(f"exit {elapsed:.2f}s after {sig.name}, bound {bound:.2f}s")
    if sig.name not in after:
        problems.append(f"no log line names {sig.name} (logged after the signal: {after[-600:]!r})")
    try:
        wait_until(lambda: not session_members(a.pid), 3 * SLOWDOWN, "the agent's session to empty")
    except AssertionError:
        problems.append(f"processes left behind: {session_members(a.pid)}")
    assert not problems, "; ".join(problems) + f"\n--- agent log (tail):\n{a.log_tail(30)}"


def assert_reason_in_words(log, words, codes):
    """SPEC §6: a refusal is logged with its reason in words, never as a bare code."""
    low = log.lower()
    assert words in low, f"the log never says {words!r}; log:\n{log[-3000:]}"
    bare = [line for line in log.splitlines()
            if any(re.search(rf"\bcode {c}\b", line) for c in codes) and words not in line.lower()]
    assert not bare, f"the refusal is logged as a bare code: {bare[:3]}"


def past_startup(a, fake=None, timeout=8.0 * SLOWDOWN):
    """Waits until the agent's own connection attempt is under way, past the start-up
    name check (which gives up on a silent broker after a few seconds): with a fake
    broker, its second CONNECT; otherwise the log's "connecting to" line. Returns what
    was seen (printed, for the record)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if a.proc.poll() is not None:
            return f"agent exited ({describe(a.proc.returncode)})"
        if fake is not None and fake.connects() >= 2:
            return f"2nd CONNECT after {time.monotonic() - t0:.2f}s"
        if fake is None and re.search(r"connecting to", read_text(a.log_path), re.I):
            return f"'connecting to' logged after {time.monotonic() - t0:.2f}s"
        time.sleep(0.05)
    return f"no sign of the connection attempt within {timeout:.1f}s; signalling anyway"


def state_config(tmp_path, config=None):
    """`config` with the agent's state_dir in the test's folder (not /var/lib/linewire)."""
    config = dict(config or {})
    config.setdefault("state_dir", str(tmp_path / "state"))
    return config


def agent_at(agent, url, tmp_path, **kw):
    """An agent whose broker.url is `url` while its watch client uses the plain `broker`;
    started without waiting for `online`."""
    config = state_config(tmp_path, kw.pop("config", None))
    config.setdefault("broker", {})["url"] = url
    return agent(config=config, wait_online=False, **kw)


# --------------------------------------------------------------------------- a. start-up


@SIGNALS
def test_signal_during_startup_name_check(agent, fake, tmp_path, request, sig):
    """(a) A silent broker holds the start-up device-name check for seconds; a signal
    0.5 s after start ends the agent with exit 0 and a log line (it used to die of the
    signal itself: no log, exit 143)."""
    f = fake("silent")
    a = agent_at(agent, f.url, tmp_path)
    t_start = time.monotonic()
    f.wait_connects(1, timeout=WAIT)
    time.sleep(max(0.0, t_start + 0.5 * SLOWDOWN - time.monotonic()))
    print(f"\n[a] CONNECTs seen at the signal: {f.connects()} (1 = still in the name check)")
    bound = NO_RUN_BOUND
    rc, elapsed, after = signal_and_time(request, a, sig, bound)
    assert_clean_stop(a, sig, rc, elapsed, bound, after)


# --------------------------------------------------------------------------- b. CONNECT hangs


@SIGNALS
def test_signal_while_connect_hangs_silent_broker(agent, fake, tmp_path, request, sig):
    """(b-i) Past start-up, the agent's CONNECT to a broker that accepts TCP and never
    answers hangs; a signal then ends it with exit 0 (it used to abort: SIGABRT,
    "terminate called after throwing an instance of 'mqtt::exception'")."""
    f = fake("silent")
    a = agent_at(agent, f.url, tmp_path)
    seen = past_startup(a, f)
    print(f"\n[b-i] {seen}")
    time.sleep(0.5 * SLOWDOWN)
    bound = NO_RUN_BOUND
    rc, elapsed, after = signal_and_time(request, a, sig, bound)
    assert_clean_stop(a, sig, rc, elapsed, bound, after)
    assert not f.errors, f.errors


def test_signal_while_connect_hangs_frozen_mosquitto(agent, make_broker, tmp_path, request):
    """(b-ii) A real mosquitto, SIGSTOPped before the agent starts (the kernel still
    accepts TCP; no CONNACK ever comes); SIGTERM past start-up ends the agent with exit
    0. The broker gets SIGCONT whatever happens."""
    frozen = make_broker()
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    try:
        a = agent_at(agent, frozen.url, tmp_path)
        seen = past_startup(a)
        print(f"\n[b-ii] {seen}")
        time.sleep(0.5 * SLOWDOWN)
        bound = NO_RUN_BOUND
        rc, elapsed, after = signal_and_time(request, a, signal.SIGTERM, bound)
        assert_clean_stop(a, signal.SIGTERM, rc, elapsed, bound, after)
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)


# --------------------------------------------------------------------------- c. refused


# Where the signal lands: in the back-off between two refused attempts, or while an
# attempt is under way (the broker holds its answer: the fake proxy delays the CONNECT,
# or the fake refuser its CONNACK, by HOLD from the third CONNECT on; the name check's
# and the agent's first attempt are answered at once, so a refusal is logged first).
MOMENTS = pytest.mark.parametrize("moment", ["backoff", "attempt"])
HOLD = 5.0
REFUSAL_LOGGED = r"connecting to[\s\S]*(retry|not connected|refus|not authori[sz]ed|unsupported)"


def signal_while_refused(request, a, sig, moment, f=None):
    """Waits for the agent's first refusal to be logged, then for `moment`, signals and
    checks the stop. Returns the whole log."""
    wait_log(a, REFUSAL_LOGGED, what="the agent to log its first refusal")
    if moment == "attempt":
        f.wait_connects(3, timeout=WAIT)  # the first retry: held by the fake
        time.sleep(0.2 * SLOWDOWN)
        assert f.connects() == 3, f"the fake saw {f.levels} CONNECTs (one is held for {HOLD}s)"
    else:
        time.sleep(0.1)  # the back-off is 0.5 s at least (reconnect.min 1s, x0.5..1.5)
    at_signal = f.connects() if f is not None else None
    before = read_text(a.log_path)
    bound = NO_RUN_BOUND
    rc, elapsed, after = signal_and_time(request, a, sig, bound)
    if f is not None:
        print(f"[c] CONNECTs (levels) seen: {f.levels}, {at_signal} at the signal")
    assert_clean_stop(a, sig, rc, elapsed, bound, after)
    return before + after


@MOMENTS
@SIGNALS
def test_signal_while_refused_by_mosquitto(agent, make_broker, fake, tmp_path, request, sig, moment):
    """(c) mosquitto with allow_anonymous false and no credentials in the config: every
    CONNECT is refused (not authorized). The log says so in words; a signal ends the
    agent with exit 0, in the back-off or while an attempt is under way (for that, a
    fake proxy in front of mosquitto holds the third CONNECT)."""
    refusing = make_broker(anonymous=False)
    f = None
    url = refusing.url
    if moment == "attempt":
        f = fake("proxy", upstream_port=refusing.port, delay=HOLD, delay_after=2)
        url = f.url
    a = agent_at(agent, url, tmp_path)
    log = signal_while_refused(request, a, sig, moment, f)
    assert_reason_in_words(log, "not authorized", (135, 5))


REFUSALS = pytest.mark.parametrize("reason,words,codes", [
    (0x84, "unsupported protocol version", (132, 1)),
    (0x87, "not authorized", (135, 5)),
], ids=["0x84", "0x87"])


@REFUSALS
@MOMENTS
@SIGNALS
def test_signal_while_refused_by_fake(agent, fake, tmp_path, request, sig, moment, reason, words, codes):
    """(c) A broker that answers every CONNECT with a refusing CONNACK (MQTT 5 reason
    0x84 unsupported protocol version, or 0x87 not authorized): the log gives the reason
    in words; a signal while the agent keeps trying (in the back-off, or while the fake
    holds its refusal) ends it with exit 0."""
    f = fake("refuse", reason=reason, delay=HOLD if moment == "attempt" else 0.0, delay_after=2)
    a = agent_at(agent, f.url, tmp_path)
    log = signal_while_refused(request, a, sig, moment, f)
    assert_reason_in_words(log, words, codes)
    assert not f.errors, f.errors


# --------------------------------------------------------------------------- d. reconnecting


@SIGNALS
def test_signal_while_reconnecting(agent, broker, tmp_path, request, sig):
    """(d) Online on a real mosquitto; the broker is killed; once the agent logs that it
    is retrying, a signal ends it with exit 0 within the no-run bound."""
    a = agent(config=state_config(tmp_path))
    offset = log_size(a)
    broker.kill()
    wait_log(a, r"retry", offset, what="the agent to log that it is retrying")
    bound = NO_RUN_BOUND
    rc, elapsed, after = signal_and_time(request, a, sig, bound)
    assert_clean_stop(a, sig, rc, elapsed, bound, after)


# --------------------------------------------------------------------------- e. run in progress


def test_signal_with_run_while_broker_away(agent, broker, request, tmp_path):
    """(e) A run of `sleep 30` (kill_grace 1s) is running when the broker goes away;
    SIGTERM ends the agent with exit 0 within kill_grace + 1 s, the run's process and
    every other process of the agent's session are gone. When the broker comes back,
    nothing odd: nothing from the old agent arrives, and an agent started again with the
    same name and state comes online without calling the run `lost` (it was killed in a
    clean shutdown, not lost in a crash)."""
    kill_grace = 1.0
    state_dir = tmp_path / "state"
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"], "kill_grace": "1s"},
                        "echo": {"exec": ["/bin/echo", "hello"]}},
              config={"state_dir": str(state_dir)})
    c = a.client()
    r = c.run("sleep", wait=False)
    r.wait_state("running")
    run_pid = r.reply["pid"]
    assert pid_alive(run_pid)
    offset = log_size(a)
    broker.kill()
    wait_log(a, r"retry", offset, what="the agent to log that it is retrying")
    assert pid_alive(run_pid), "the run died with the broker (SPEC §6: runs keep going)"
    bound = (kill_grace + 1.0) * SLOWDOWN
    rc, elapsed, after = signal_and_time(request, a, signal.SIGTERM, bound)
    assert_clean_stop(a, signal.SIGTERM, rc, elapsed, bound, after)
    assert not pid_alive(run_pid), f"the run's process {run_pid} survived the shutdown"

    # The broker comes back (same port, empty: persistence is off).
    broker.fixed_port = True
    broker.start()
    spy = Client(broker.port, a.base, a.prefix, name="spy")
    try:
        spy.subscribe(f"{a.base}/#")
        spy.assert_none(f"{a.base}/#", duration=1.0 * SLOWDOWN,
                        what="message from an agent that has exited")
        # The same agent again: it comes online, does not report the old run as lost
        # (its state file says the run ended), and serves requests.
        restart_offset = log_size(a)
        a.start()
        c2 = a.client()
        assert c2.run("echo").out == [b"hello"]
        old = [m.json() for m in spy.snapshot(f"{a.base}/run/{r.id}/state") if m.payload]
        assert not any(s.get("state") == "lost" for s in old), \
            f"the run killed in the clean shutdown came back as lost: {old}"
        again = log_since(a, restart_offset)
        assert not re.search(rf"{re.escape(r.id)}\S*:? lost", again), \
            f"the restarted agent logged the old run as lost:\n{again[-2000:]}"
        assert not pid_alive(run_pid)
    finally:
        spy.close()


# --------------------------------------------------------------------------- f. protocol auto


def test_protocol_auto_falls_back_to_311(agent, broker, fake, tmp_path, request):
    """(f) `broker.protocol: auto` against a broker that refuses MQTT 5 as an unsupported
    protocol version (a 3.1.1-only proxy in front of a real mosquitto): the agent falls
    back to 3.1.1, comes online, logs that it uses 3.1.1, and serves a start request
    with `reply_to` (SPEC §3). The proxy saw exactly one MQTT 5 CONNECT, and only 3.1.1
    after it."""
    f = fake("v311_only", upstream_port=broker.port)
    a = agent(commands={"echo": {"exec": ["/bin/echo", "hello"]}},
              config=state_config(tmp_path, {"broker": {"url": f.url, "protocol": "auto"}}),
              wait_online=False)
    a.wait_online(timeout=WAIT)
    online = a.watch.fresh_retained(f"{a.base}/status")
    assert [m.payload for m in online] == [b"online"] and online[0].retain, online
    watcher = a.client()
    c3 = Client(broker.port, a.base, a.prefix, protocol=4, name="v3")
    try:
        rid = unique("r")
        watcher.subscribe(f"{a.base}/run/{rid}/#")
        rt = f"{a.prefix}/_client/{c3.id}/reply"
        c3.subscribe(rt)
        c3.publish(f"{a.base}/cmd/echo/start", {"id": rid, "reply_to": rt, "correlation": "auto-1"})
        reply = c3.wait_msg(rt).json()
        assert reply["ok"] is True and reply["run"] == rid and reply.get("correlation") == "auto-1", reply
        watcher.wait_msg(f"{a.base}/run/{rid}/state",
                         lambda m: m.payload and m.json()["state"] == "exited")
        assert [m.payload for m in watcher.snapshot(f"{a.base}/run/{rid}/out")] == [b"hello"]
    finally:
        c3.close()
    log = a.log_text()
    assert "3.1.1" in log, f"the log does not say the agent uses MQTT 3.1.1; log:\n{a.log_tail(30)}"
    levels = list(f.levels)
    print(f"\n[f] CONNECT levels seen by the 3.1.1-only proxy: {levels}")
    # The agent's own connection: one MQTT 5 CONNECT, refused, then 3.1.1 only. (The
    # start-up name check is a connection of its own and may come first, in either
    # protocol: with `auto` it may well use 3.1.1.)
    assert set(levels) <= {4, 5} and levels.count(5) == 1, \
        f"expected exactly one MQTT 5 CONNECT, the rest 3.1.1: {levels}"
    after_v5 = levels[levels.index(5) + 1:]
    assert after_v5 and all(lv == 4 for lv in after_v5), \
        f"expected 3.1.1 CONNECTs after the refused MQTT 5 one: {levels}"
    assert not f.errors, f.errors
    bound = NO_RUN_BOUND
    mark = a.watch.mark()
    rc, elapsed, after = signal_and_time(request, a, signal.SIGTERM, bound)
    assert_clean_stop(a, signal.SIGTERM, rc, elapsed, bound, after)
    a.watch.wait_payload(f"{a.base}/status", "offline", since=mark, timeout=WAIT)
