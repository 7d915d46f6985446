"""SPEC §12: the agent keeps each run's output and replays it on request, over a real
mosquitto. History per run and for all runs, eviction, replay with MQTT 5 and 3.1.1,
refusals, floods; and the client's `logs`, `watch` and `run` catching up with it."""

import json
import os
import signal
import subprocess
import time

import pytest

from harness import SLOWDOWN, WAIT, unique, wait_until
from procfs import status

MIXED = "i=0\nwhile [ $i -lt 100 ]; do i=$((i+1)); echo \"out $i\"; " \
        "[ $((i % 40)) -eq 0 ] && echo \"err $i\" >&2; done\nexit 3\n"


def replay(c, rid, payload=b"", timeout=WAIT):
    """Sends a replay for run `rid` with a Response Topic; returns (summary Msg, out Msgs,
    err Msgs) once the summary came."""
    rt = f"{c.reply_topic_base}/{unique('rp')}"
    cd = b"cd-" + rid.encode()
    mark = c.mark()
    c.publish(c.topic(f"run/{rid}/replay"), payload, response_topic=rt, correlation=cd)
    summary = c.wait_msg(rt, since=mark, timeout=timeout, what=f"the replay summary of {rid}")
    assert summary.correlation == cd
    return summary, c.snapshot(f"{rt}/out", mark), c.snapshot(f"{rt}/err", mark)


def test_replay_of_a_finished_run_gives_every_line_with_its_seq_then_the_summary(agent, prog):
    p = prog("mixed.sh", MIXED)
    a = agent(commands={"mixed": {"exec": [p]}})
    c = a.client()
    r = c.run("mixed")
    assert len(r.out) == 100
    summary, out, err = replay(c, r.id)
    assert [m.text for m in out] == [f"out {i}" for i in range(1, 101)]
    assert [m.seq for m in out] == list(range(1, 101))
    assert [m.text for m in err] == ["err 40", "err 80"]
    assert [m.seq for m in err] == [1, 2]
    assert all(m.index < summary.index for m in out + err), "the summary comes last"
    assert not summary.retain and not any(m.retain for m in out)
    assert summary.json() == {"ok": True, "device": a.device, "run": r.id, "state": "exited",
                              "out": {"first": 1, "last": 100}, "err": {"first": 1, "last": 2}}
    # Replayed, not republished: nothing new on the run's own topics.
    c.assert_none(c.topic(f"run/{r.id}/out"), since=summary.index - len(out) - 2 + 1,
                  pred=lambda m: not m.retain, what="a live line during the replay")


def test_replay_from_a_line_and_of_one_stream(agent, prog):
    p = prog("mixed.sh", MIXED)
    a = agent(commands={"mixed": {"exec": [p]}})
    c = a.client()
    r = c.run("mixed")
    summary, out, err = replay(c, r.id, json.dumps({"from": 95, "streams": ["out"]}))
    assert [m.seq for m in out] == [95, 96, 97, 98, 99, 100] and err == []
    assert summary.json()["out"] == {"first": 95, "last": 100}
    assert summary.json()["err"] == {"first": None, "last": None}
    summary, out, err = replay(c, r.id, json.dumps({"from": {"out": 101, "err": 2}}))
    assert out == [] and [m.text for m in err] == ["err 80"]
    summary, out, err = replay(c, r.id, json.dumps({"from": 10**18}))
    assert out == [] and err == []
    assert summary.json()["out"] == {"first": None, "last": None}
    summary, out, _ = replay(c, r.id, json.dumps({"from": 0}))
    assert len(out) == 100  # 0 reads as 1


def test_replay_of_a_running_run_then_live_lines_follow_without_a_gap(agent, prog):
    p = prog("slow.sh", "i=0\nwhile [ $i -lt 40 ]; do i=$((i+1)); echo \"l $i\"; "
                        "sleep 0.05; done\n")
    a = agent(commands={"slow": {"exec": [p]}})
    c = a.client()
    r = c.run("slow", wait=False)
    c.wait_msg(c.topic(f"run/{r.id}/out"), lambda m: m.seq == 10, what="line 10")
    summary, out, _ = replay(c, r.id)
    s = summary.json()
    assert s["state"] == "running"
    last = s["out"]["last"]
    assert [m.seq for m in out] == list(range(1, last + 1))
    r.wait_final()
    live = [m.seq for m in r.out_msgs if m.seq > last]
    assert sorted(set([m.seq for m in out] + live)) == list(range(1, 41))


def test_replay_with_mqtt_311_uses_reply_to_and_keeps_the_order(agent, prog):
    p = prog("mixed.sh", MIXED)
    a = agent(commands={"mixed": {"exec": [p]}})
    c = a.client()
    r = c.run("mixed")
    old = a.client(protocol=4)
    rt = f"{old.reply_topic_base}/{unique('rp')}"
    old.subscribe(f"{rt}/#")
    mark = old.mark()
    old.publish(old.topic(f"run/{r.id}/replay"),
                json.dumps({"from": 98, "reply_to": rt, "correlation": "c-311"}))
    summary = old.wait_msg(rt, since=mark, what="the 3.1.1 replay summary")
    assert summary.json()["correlation"] == "c-311"
    assert summary.json()["out"] == {"first": 98, "last": 100}
    assert [m.text for m in old.snapshot(f"{rt}/out", mark)] == ["out 98", "out 99", "out 100"]


def test_history_per_run_drops_the_oldest_lines(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "1000"], "history": "4KiB"}})
    c = a.client()
    r = c.run("seq")
    summary, out, _ = replay(c, r.id)
    first = summary.json()["out"]["first"]
    # Each line costs its bytes + 32: about 4096 / 35 lines stay.
    assert 100 < 1000 - first + 1 < 125, first
    assert [m.text for m in out] == [str(i) for i in range(first, 1001)]


def test_history_0_keeps_nothing_but_the_run_is_known(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "10"], "history": 0}})
    c = a.client()
    r = c.run("seq")
    summary, out, _ = replay(c, r.id)
    assert out == []
    assert summary.json()["state"] == "exited"
    assert summary.json()["out"] == {"first": None, "last": None}


def test_limits_history_evicts_the_oldest_finished_run_whole(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "200"]}},
              config={"limits": {"history": "10KiB"}})
    c = a.client()
    runs = [c.run("seq", id=unique("h")) for _ in range(3)]  # ~7 KiB each
    s0 = replay(c, runs[0].id)[0].json()
    s2 = replay(c, runs[2].id)[0].json()
    assert s0["out"] == {"first": None, "last": None} and s0["state"] == "exited"
    assert s2["out"] == {"first": 1, "last": 200}
    c.subscribe(c.topic("info"))
    # info is published at most once a second, as runs start and end.
    info = c.wait_msg(c.topic("info"), lambda m: m.json()["history"]["bytes"] > 0).json()
    assert info["history"]["max"] == 10 * 1024
    assert 0 < info["history"]["bytes"] <= 10 * 1024


def test_history_goes_with_the_retained_state(agent):
    """keep_runs: 1: the older run's state is cleared, and its output with it."""
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "5"]}}, config={"keep_runs": 1})
    c = a.client()
    first = c.run("seq")
    c.run("seq")
    summary, out, _ = replay(c, first.id)
    assert summary.json()["ok"] is False
    assert summary.json()["error"]["code"] == "unknown_run"


def test_a_reload_that_keeps_less_forgets_at_once(agent, tmp_path):
    """SIGHUP with a lower keep_runs: the runs it no longer keeps are forgotten then (their
    retained states cleared, their output gone), not one at a time as new runs end; a
    lower limits.history evicts at once, and /metrics says so."""
    import re
    import yaml
    from test_websocket import ws_agent
    from wsclient import http_get
    a = ws_agent(agent, tmp_path, {"seq": {"exec": ["/usr/bin/seq", "200"]}},
                 config={"keep_runs": 5})
    c = a.client()
    ids = [c.run("seq").id for _ in range(4)]

    def retained():
        return {m.topic.split("/")[-2] for m in c.fresh_retained(f"{a.base}/run/+/state")}

    def history_bytes():
        text = http_get(a.ws_port, "/metrics")[2].decode()
        return int(re.search(r"^linewire_history_bytes (\d+)$", text, re.M).group(1))

    assert retained() == set(ids)
    before = history_bytes()
    assert before >= 4 * 692  # seq 1..200 is 692 bytes of text, plus what a line costs
    cfg = dict(a.config, keep_runs=2, limits={"history": "1KiB"})
    with open(a.config_path, "w") as f:
        yaml.safe_dump(cfg, f)
    a.send_signal(signal.SIGHUP)
    wait_until(lambda: retained() == set(ids[2:]), WAIT, "only the newest 2 states retained")
    summary, _, _ = replay(c, ids[1])
    assert summary.json()["error"]["code"] == "unknown_run"
    wait_until(lambda: history_bytes() <= 1024, WAIT, "/metrics to show the lower total")


def test_a_run_of_a_removed_command_is_not_replayed(agent):
    """A reload removed the command: the keys that guarded its runs' output went with it,
    so no signature can be checked against them; its output is served to no one (the
    run's retained state stays as keep_runs says)."""
    import yaml
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "5"]},
                        "echo": {"exec": ["/bin/echo", "hi"]}})
    c = a.client()
    r = c.run("seq")
    assert replay(c, r.id)[0].json()["ok"] is True
    cfg = dict(a.config)
    cfg["commands"] = {"echo": a.config["commands"]["echo"]}
    with open(a.config_path, "w") as f:
        yaml.safe_dump(cfg, f)
    a.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in a.log_text(), WAIT, "the reload")
    error = replay(c, r.id)[0].json()["error"]
    assert error["code"] == "unknown_run" and "no longer configured" in error["message"], error


def test_replay_refusals(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "5"]}})
    c = a.client()
    c.subscribe(c.topic("errors"))
    r = c.run("seq")
    # No reply destination: refused on errors, never answered on the run's topics.
    mark = c.mark()
    topic = c.topic(f"run/{r.id}/replay")
    c.publish(topic, b"")
    e = c.wait_error(topic, since=mark)
    assert e["error"]["code"] == "bad_request" and "reply" in e["error"]["message"]
    c.assert_none(c.topic(f"run/{r.id}/out"), since=mark, pred=lambda m: not m.retain)
    for payload in (b"nope", b"[]", b'{"from": -1}', b'{"from": "1"}', b'{"from": 1.5}',
                    b'{"streams": ["log"]}', b'{"streams": []}', b'{"from": {"x": 1}}',
                    b'{"from": 1e400}', b'{"frm": 1}'):
        reply = c.request(topic, payload)
        assert reply.code == "bad_request", (payload, reply)
    assert c.request(c.topic("run/nosuch/replay")).code == "unknown_run"
    assert c.request(c.topic("run/.bad/replay")).code == "bad_request"
    # Retained: refused, not replayed to whoever subscribes later.
    mark = c.mark()
    c.publish(topic, b"", retain=True)
    assert c.wait_error(topic, since=mark)["error"]["code"] == "bad_request"
    c.publish(topic, b"", retain=True)  # clear it
    c.publish(topic, b"", retain=False)


def test_replay_flood_is_bounded_and_the_agent_serves_the_next(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "50"]}})
    c = a.client()
    r = c.run("seq")
    rss_before = status(a.proc.pid)["RssAnon"]
    topics = []
    mark = c.mark()
    for i in range(1000):
        rt = f"{c.reply_topic_base}/flood{i}"
        topics.append(rt)
        c.publish(c.topic(f"run/{r.id}/replay"), b"", response_topic=rt, correlation=b"f")
    answered = {}

    looked = [0]  # messages already looked at: the check runs at each new message

    def all_answered(msgs):
        for m in msgs[looked[0]:]:
            if m.topic in topics_set and m.topic not in answered:
                answered[m.topic] = m.json()
        looked[0] = len(msgs)
        return len(answered) == len(topics)

    topics_set = set(topics)
    c.wait_for(all_answered, timeout=60 * SLOWDOWN, what="an answer to every replay")
    codes = [d.get("error", {}).get("code", "ok") for d in answered.values()]
    assert set(codes) <= {"ok", "busy"}, set(codes)
    assert codes.count("ok") >= 36  # 4 under way + 32 waiting at the least
    # Every replay that was served is whole.
    served = [t for t, d in answered.items() if d.get("ok")]
    for t in served[:5]:
        assert len(c.snapshot(f"{t}/out", mark)) == 50
    # Memory: replays go through the bounded output queue, and keep nothing of their own.
    # (Not under AddressSanitizer: its quarantine keeps freed memory on purpose.)
    with open(f"/proc/{a.proc.pid}/maps") as f:
        sanitized = "libasan" in f.read()
    if not sanitized:
        assert status(a.proc.pid)["RssAnon"] <= rss_before + 8 * 2**20
    # And the next request is served as always.
    assert c.run("seq").final["state"] == "exited"
    summary, out, _ = replay(c, r.id)
    assert len(out) == 50


# ------------------------------------------------------------------ the client (§10)

def test_logs_prints_the_kept_output_and_exits(agent, prog):
    from test_client import lw
    p = prog("mixed.sh", MIXED)
    a = agent(commands={"mixed": {"exec": [p]}})
    r = a.client().run("mixed")
    res = lw(a, "logs", a.device, r.id)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [f"out {i}" for i in range(1, 101)]
    assert b"err 40\nerr 80\n" in res.stderr
    res = lw(a, "logs", "--from", "99", a.device, r.id)
    assert res.stdout == b"out 99\nout 100\n"
    res = lw(a, "logs", a.device, "nosuch")
    assert res.returncode == 255 and b"unknown_run" in res.stderr


def test_logs_says_when_the_first_lines_are_no_longer_held(agent):
    from test_client import lw
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "1000"], "history": "4KiB"}})
    r = a.client().run("seq")
    res = lw(a, "logs", a.device, r.id)
    got = res.stdout.decode().splitlines()
    first = int(got[0])
    assert got == [str(i) for i in range(first, 1001)]
    assert f"{first - 1} stdout line(s) from 1 on are no longer held".encode() in res.stderr


def test_watch_of_a_finished_run_shows_all_of_it_and_its_exit_status(agent, prog):
    from test_client import lw
    p = prog("mixed.sh", MIXED)
    a = agent(commands={"mixed": {"exec": [p]}})
    r = a.client().run("mixed")
    res = lw(a, "watch", a.device, r.id)
    assert res.returncode == 3, res.stderr
    assert res.stdout.decode().splitlines() == [f"out {i}" for i in range(1, 101)]
    res = lw(a, "watch", "--from", "60", a.device, r.id)
    assert res.stdout.decode().splitlines() == [f"out {i}" for i in range(60, 101)]
    assert b"were lost" not in res.stderr and b"did not arrive" not in res.stderr


def test_watch_of_a_running_run_from_its_first_line_or_only_new_lines(agent, prog):
    from test_client import finish, read_line, spawn
    p = prog("slow.sh", "i=0\nwhile [ $i -lt 60 ]; do i=$((i+1)); echo \"l $i\"; "
                        "sleep 0.05; done\n")
    a = agent(commands={"slow": {"exec": [p]}})
    c = a.client()
    r = c.run("slow", wait=False)
    c.wait_msg(c.topic(f"run/{r.id}/out"), lambda m: m.seq == 15, what="line 15")
    whole = spawn(a, "watch", a.device, r.id)
    new = spawn(a, "watch", "--new", a.device, r.id)
    status, out, err = finish(whole)
    assert status == 0, err
    assert out.decode().splitlines() == [f"l {i}" for i in range(1, 61)], err
    status, out, err = finish(new)
    got = [int(x.split()[1]) for x in out.decode().splitlines()]
    assert got and got[0] > 15 and got == list(range(got[0], 61)), got


@pytest.mark.parametrize("persistent", [False, True], ids=["plain", "persistent"])
def test_run_gets_every_line_exactly_once_across_a_broker_restart(agent, prog, tmp_path,
                                                                    persistent):
    """SPEC §10/§12: a broker restart sends the device's last will, both ends reconnect,
    the run goes on; `linewire run` asks for what it missed, which comes from the agent's
    history: a plain broker keeps nothing, a persistent one (Debian's default) keeps its
    retained messages and sessions but the client's session is clean, so it has nothing
    queued either. Its retained final state gives the real exit status."""
    from test_client import finish, read_line, spawn
    from test_durability import PersistentBroker
    p = prog("ticker.sh", "i=0\nwhile [ $i -lt 60 ]; do i=$((i+1)); echo \"tick $i\"; "
                          "sleep 0.05; done\nexit 2\n")
    own = PersistentBroker(tmp_path / "pbroker", name="mosquitto").start() if persistent else None
    try:
        a = agent(commands={"ticker": {"exec": [p]}}, **({"broker": own} if own else {}))
        proc = spawn(a, "run", a.device, "ticker")
        assert read_line(proc) == b"tick 1"
        a.broker.restart()
        status, out, err = finish(proc)
    finally:
        if own:
            own.kill()
    assert status == 2, err
    assert b"reconnected" in err
    got = ["tick 1"] + out.decode().splitlines()
    assert got == [f"tick {i}" for i in range(1, 61)], err
    assert b"were lost" not in err and b"did not arrive" not in err, err
    assert "replay of run" in open(a.log_path, errors="replace").read()


# ------------------------------------------------------------------- WebSocket (§8.2)

def test_websocket_viewer_from_a_line_gets_kept_then_live_lines_once(agent, tmp_path, prog):
    from test_websocket import ws_agent
    from wsclient import connect, handshake_status, read_until_closed
    mixed = prog("mixed.sh", MIXED)
    slow = prog("slow.sh", "i=0\nwhile [ $i -lt 40 ]; do i=$((i+1)); echo \"l $i\"; "
                           "sleep 0.05; done\n")
    a = ws_agent(agent, tmp_path, {"mixed": {"exec": [mixed]}, "slow": {"exec": [slow]}})
    c = a.client()
    done = c.run("mixed")
    lines, closed = read_until_closed(connect(a.ws(f"/run/{done.id}?from=1")))
    assert lines == [f"out {i}" for i in range(1, 101)] and closed.code == 1000
    lines, closed = read_until_closed(connect(a.ws(f"/run/{done.id}?from=95")))
    assert lines == [f"out {i}" for i in range(95, 101)] and closed.code == 1000
    assert handshake_status(a.ws(f"/run/{done.id}")) == 404  # ended, and no from: as before
    assert handshake_status(a.ws(f"/run/{done.id}?from=x")) == 400
    assert handshake_status(a.ws(f"/run/{done.id}?from=-1")) == 400
    assert handshake_status(a.ws("/run/nosuch?from=1")) == 404
    running = c.run("slow", wait=False)
    c.wait_msg(c.topic(f"run/{running.id}/out"), lambda m: m.seq == 10, what="line 10")
    lines, closed = read_until_closed(connect(a.ws(f"/run/{running.id}?from=1")))
    assert lines == [f"l {i}" for i in range(1, 41)] and closed.code == 1000


def test_a_run_forgotten_or_a_viewer_gone_mid_replay(agent):
    """The run's history goes (keep_runs) while it is replayed: the replay ends with
    unknown_run, or had just finished; a replay whose asker left goes on into the void.
    Either way the agent serves the next request."""
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "5000"], "history": "4MiB"},
                        "true": {"exec": ["/bin/true"]}},
              config={"keep_runs": 1, "qos": 0, "limits": {"history": "8MiB"}})
    c = a.client()
    big = c.run("seq", final_timeout=60)
    viewer = a.client()  # a client of its own: the test's client is slow with many lines
    rt = f"{viewer.reply_topic_base}/{unique('rp')}"
    mark = viewer.mark()
    viewer.publish(viewer.topic(f"run/{big.id}/replay"), b"", response_topic=rt, correlation=b"x")
    viewer.wait_msg(f"{rt}/out", since=mark, what="the replay under way")
    c.run("true")  # keep_runs: 1: the big run's state and history are forgotten now
    summary = viewer.wait_msg(rt, since=mark, timeout=60).json()
    if summary["ok"]:
        assert summary["out"]["last"] == 5000  # it finished first
    else:
        assert summary["error"]["code"] == "unknown_run"
    gone = a.client()
    gone.publish(gone.topic(f"run/{c.run('seq', final_timeout=60).id}/replay"), b"",
                 response_topic=f"{gone.reply_topic_base}/x", correlation=b"y")
    gone.close()
    assert c.run("true").final["state"] == "exited"
    with open(a.log_path, errors="replace") as f:
        assert "replay of run" in f.read()


def test_run_gets_every_line_across_a_network_cut_and_a_frozen_link(agent, prog):
    """The client's own link to the broker reset (a cut: it reconnects and fetches what
    it missed), then stalled for 4 s (a Wi-Fi dropout: what was held flows on); every
    line once, in order, and the run's exit status. A broker frozen past the client's
    20 s keep-alive ends as a cut does."""
    from faultproxy import FaultProxy
    from test_client import LINEWIRE, client_env, read_line
    p = prog("ticker.sh", "i=0\nwhile [ $i -lt 150 ]; do i=$((i+1)); echo \"tick $i\"; "
                          "sleep 0.1; done\nexit 5\n")
    a = agent(commands={"ticker": {"exec": [p]}})
    proxy = FaultProxy(a.broker.port)
    try:
        proc = subprocess.Popen([LINEWIRE, "--broker", f"mqtt://127.0.0.1:{proxy.port}",
                                 "--prefix", a.prefix, "run", "--no-stdin", a.device, "ticker"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env())
        assert read_line(proc) == b"tick 1"
        proxy.cut()
        time.sleep(2 * SLOWDOWN)
        proxy.stall(4)
        out, err = proc.communicate(timeout=60 * SLOWDOWN)
    finally:
        proxy.close()
    assert proc.returncode == 5, err
    got = ["tick 1"] + out.decode().splitlines()
    assert got == [f"tick {i}" for i in range(1, 151)], err
    assert err.count(b"reconnected") >= 1, err
    assert b"were lost" not in err and b"did not arrive" not in err, err


def test_run_gets_every_line_across_a_frozen_broker(agent, prog):
    """The broker stops answering (SIGSTOP: a hung process, a paused VM) for 12 s. The
    agent's keep-alive (2 s here) runs out first: it drops the connection, reconnects when
    the broker answers again and sends what it held; the broker delivers the agent's
    will, then its `online`. The client rides the freeze out on its 20 s keep-alive (when
    a freeze outlasts that, it ends as the cut above does). Every line once, in order,
    the run's exit status, and the device back online without the client giving up."""
    from test_client import finish, read_line, spawn
    p = prog("ticker.sh", "i=0\nwhile [ $i -lt 100 ]; do i=$((i+1)); echo \"tick $i\"; "
                          "sleep 0.05; done\nexit 3\n")
    a = agent(commands={"ticker": {"exec": [p]}}, config={"broker": {"keepalive": "2s"}})
    proc = spawn(a, "run", a.device, "ticker")
    assert read_line(proc) == b"tick 1"
    os.kill(a.broker.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(12)
    finally:
        os.kill(a.broker.proc.pid, signal.SIGCONT)
    status, out, err = finish(proc)
    assert status == 3, err
    got = ["tick 1"] + out.decode().splitlines()
    assert got == [f"tick {i}" for i in range(1, 101)], err
    assert b"were lost" not in err and b"did not arrive" not in err, err
    log = a.log_text()
    assert "connection lost" in log or "not connected" in log, log  # the agent did give up


def test_websocket_viewer_of_a_history_bigger_than_the_viewer_limit(agent, tmp_path, prog):
    """1.5 MiB of kept stdout (the viewer limit is 1 MiB): it comes in batches as the
    client reads, all of it, and the viewer is not closed as too slow."""
    from test_websocket import ws_agent
    from wsclient import connect, read_until_closed
    big = prog("big.sh", "i=0\nwhile [ $i -lt 15000 ]; do i=$((i+1)); printf '%099d\\n' $i; done\n")
    a = ws_agent(agent, tmp_path, {"big": {"exec": [big], "history": "4MiB"}})
    # Only its state: the test client would take a while over 15,000 lines.
    c = a.client()
    rid = unique("big")
    c.subscribe(c.topic(f"run/{rid}/state"))
    assert c.start("big", {"id": rid}).get("ok") is True
    c.wait_msg(c.topic(f"run/{rid}/state"),
               lambda m: m.payload and m.json().get("state") == "exited", timeout=60)
    lines, closed = read_until_closed(connect(a.ws(f"/run/{rid}?from=1")), timeout=60)
    assert closed.code == 1000, closed
    assert lines == [f"{i:099d}" for i in range(1, 15001)]
