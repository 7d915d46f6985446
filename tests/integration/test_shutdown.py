"""SPEC §6: SIGTERM/SIGINT — stop taking requests, kill runs (reason shutdown), publish
their final states and `offline`, exit 0."""

import signal
import time

import pytest

from harness import SLOWDOWN, pid_alive, session_members, wait_until

STUBBORN = "trap 'echo term' TERM\necho ready\nwhile :; do sleep 0.05; done\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_kills_runs_and_publishes_final_states(agent, prog, sig):
    p = prog("stubborn.sh", STUBBORN)
    a = agent(commands={
        "sleep": {"exec": ["/bin/sleep", "30"], "kill_grace": "300ms"},
        "stubborn": {"exec": [p], "kill_grace": "300ms"},
    })
    c = a.client()
    r1 = c.run("sleep", wait=False)
    r2 = c.run("stubborn", wait=False)
    r1.wait_state("running")
    r2.wait_out("ready")
    pids = [r1.reply["pid"], r2.reply["pid"]]
    mark = c.mark()
    t0 = time.monotonic()
    rc = a.stop(sig)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit status {rc} after {sig.name}"
    assert elapsed < 5 * SLOWDOWN, f"shutdown took {elapsed:.1f}s"
    f1 = r1.wait_final(timeout=2)
    f2 = r2.wait_final(timeout=2)
    assert f1["state"] == "killed" and f1["reason"] == "shutdown" and f1["signal"] == "TERM", f1
    assert f2["state"] == "killed" and f2["reason"] == "shutdown" and f2["signal"] == "KILL", f2
    offline = c.wait_payload(f"{a.base}/status", "offline", since=mark, timeout=2)
    assert offline.retain
    assert r1.final_msg().index < offline.index and r2.final_msg().index < offline.index, \
        "offline was published before the final states"
    for pid in pids:
        assert not pid_alive(pid), f"run process {pid} survived the shutdown"
    # Retained: a newcomer sees the final states and offline.
    assert [m.json()["state"] for m in c.fresh_retained(f"{a.base}/run/{r2.id}/state")] == ["killed"]
    assert [m.payload for m in c.fresh_retained(f"{a.base}/status")] == [b"offline"]


def test_shutdown_without_runs_is_quick(agent):
    a = agent()
    t0 = time.monotonic()
    assert a.stop() == 0
    assert time.monotonic() - t0 < 3 * SLOWDOWN


def test_shutdown_kills_services(agent):
    a = agent(start=False, commands={"svc": {"exec": ["/bin/cat"], "mode": "service",
                                             "restart_delay": "100ms"}})
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state")
    a.start()
    st = c.wait_msg(f"{a.base}/run/+/state", lambda m: m.payload and m.json()["state"] == "running")
    pid = st.json()["pid"]
    mark = c.mark()
    assert a.stop() == 0
    f = c.wait_msg(f"{a.base}/run/+/state", lambda m: m.payload and m.json()["state"] == "killed",
                   since=mark, timeout=2).json()
    assert f["reason"] == "shutdown" and f["run"] == st.json()["run"]
    assert not pid_alive(pid)
    # The service was not restarted during the shutdown.
    restarted = [m for m in c.snapshot(f"{a.base}/run/+/state", mark)
                 if m.payload and m.json()["state"] == "running"]
    assert not restarted, restarted


def test_no_requests_taken_during_shutdown(agent, prog, tmp_path):
    """§6: once shutting down, the agent stops taking requests: a start that arrives during
    the kill grace never runs (refused with shutting_down, or not received at all)."""
    p = prog("stubborn.sh", STUBBORN)
    marker = tmp_path / "late"
    a = agent(commands={"stubborn": {"exec": [p], "kill_grace": "1500ms"},
                        "touch": {"exec": ["/usr/bin/touch", str(marker)]}})
    c = a.client()
    r = c.run("stubborn", wait=False)
    r.wait_out("ready")
    mark = c.mark()
    a.send_signal(signal.SIGTERM)
    r.wait_out("term")  # the agent has begun the shutdown
    rt = f"{c.reply_topic_base}/late"
    c.publish(c.topic("cmd/touch/start"), "{}", response_topic=rt, correlation=b"late")
    rc = a.stop(sig=None)  # a second SIGTERM may mean "leave now"
    assert rc == 0
    assert not marker.exists(), "a request was run during shutdown"
    for m in c.snapshot(rt, mark):
        assert m.json()["error"]["code"] == "shutting_down", m
    assert r.final["reason"] == "shutdown"


def test_no_processes_left_after_shutdown(agent, prog):
    p = prog("family.sh", "sleep 30 &\necho $!\nwait\n")
    a = agent(commands={"family": {"exec": [p], "kill_grace": "300ms"}})
    c = a.client()
    r = c.run("family", wait=False)
    child = int(c.wait_msg(f"{r.prefix_topic}/out", since=r.since).payload)
    sid = a.pid
    assert a.stop() == 0
    wait_until(lambda: not pid_alive(child), 3, "the grandchild to be gone")
    wait_until(lambda: not session_members(sid), 3, "every process of the agent to be gone")
