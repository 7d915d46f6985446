"""SPEC §3 (start request, replies, errors topic), the request topics of §2 (stop, switch,
group start) and the command topics (last, running), services (§5) and the audit log."""

import re
import time

import yaml

from harness import NAME_RE, SLOWDOWN, unique

SLEEP = {"exec": ["/bin/sleep", "30"], "kill_grace": "300ms"}


def test_reply_is_exactly_as_spec(agent):
    """§3: {"ok", "device", "run", "command", "pid"}; the Correlation Data is echoed; one
    reply; not retained."""
    a = agent(commands={"echo": {"exec": ["/bin/echo", "hi"]}})
    c = a.client()
    r = c.run("echo", id="nightly-7")
    assert set(r.reply.data) == {"ok", "device", "run", "command", "pid"}, r.reply.data
    assert r.reply["ok"] is True
    assert r.reply["device"] == a.device
    assert r.reply["run"] == "nightly-7"
    assert r.reply["command"] == "echo"
    assert isinstance(r.reply["pid"], int) and r.reply["pid"] > 1
    assert r.reply.msg.correlation == r.reply.correlation
    assert not r.reply.msg.retain
    assert r.final["pid"] == r.reply["pid"]
    c.assert_none(r.reply.response_topic, since=r.reply.msg.index + 1, what="a second reply")


def test_correlation_data_is_echoed_byte_for_byte(agent):
    a = agent()
    c = a.client()
    for cd in (b"\x00\x01\xfe\xff binary", b"x", bytes(range(256))):
        reply = c.start("echo", {}, correlation=cd)
        assert reply["ok"] is True
        assert reply.msg.correlation == cd


def test_reply_without_correlation_data(agent):
    """A Response Topic without Correlation Data still gets its reply."""
    a = agent()
    c = a.client()
    rt = f"{c.reply_topic_base}/nocd"
    mark = c.mark()
    c.publish(c.topic("cmd/echo/start"), "{}", response_topic=rt)
    m = c.wait_msg(rt, since=mark)
    assert m.json()["ok"] is True
    assert m.correlation is None


def test_generated_run_ids(agent):
    """§3: without `id` the agent generates a unique one matching the name pattern; the reply
    carries it in `run`."""
    a = agent()
    c = a.client()
    c.subscribe(c.topic("run/+/state"))
    ids = set()
    for payload in (b"", b"{}", b" { } "):
        reply = c.start("echo", payload)
        assert reply["ok"] is True, reply
        rid = reply["run"]
        assert NAME_RE.match(rid), rid
        ids.add(rid)
        st = c.wait_msg(c.topic(f"run/{rid}/state"), lambda m: m.json()["state"] == "exited")
        assert st.json()["run"] == rid
    assert len(ids) == 3


def test_empty_payload_is_a_start(agent):
    """§3: the payload may be empty."""
    a = agent()
    c = a.client()
    reply = c.start("echo", b"")
    assert reply["ok"] is True and reply["command"] == "echo"


def test_refusal_reply_format(agent):
    """§3: {"ok": false, "device", "error": {"code", "message"}}."""
    a = agent()
    c = a.client()
    reply = c.start("cuont", {})
    assert reply.data["ok"] is False
    assert reply.data["device"] == a.device
    assert set(reply.data["error"]) >= {"code", "message"}
    assert reply.code == "unknown_command"
    assert "cuont" in reply.data["error"]["message"]
    assert set(reply.data) == {"ok", "device", "error"}, reply.data
    assert reply.msg.correlation == reply.correlation
    c.assert_none(reply.response_topic, since=reply.msg.index + 1, what="a second reply")
    c.assert_none(c.topic("errors"), what="an errors event for a request that had a reply topic")


def test_refusal_without_reply_goes_to_errors_topic(agent):
    """§3: without a reply destination a refusal goes to {prefix}/{device}/errors with the
    same error object plus `topic`; not retained."""
    a = agent()
    c = a.client()
    topic = c.topic("cmd/cuont/start")
    c.publish(topic, "{}")
    ev = c.wait_error(topic)
    assert ev["device"] == a.device
    assert ev["topic"] == topic
    assert ev["error"]["code"] == "unknown_command"
    assert isinstance(ev["error"]["message"], str) and ev["error"]["message"]
    m = c.snapshot(c.topic("errors"))[-1]
    assert not m.retain


def test_unknown_run_for_in_eof_signal(agent):
    """§2: in/eof/signal for a run that does not exist give unknown_run on errors."""
    a = agent()
    c = a.client()
    for kind, payload in (("in", "x"), ("eof", ""), ("signal", "TERM")):
        topic = c.topic(f"run/nosuchrun/{kind}")
        c.publish(topic, payload)
        ev = c.wait_error(topic)
        assert ev["error"]["code"] == "unknown_run", (kind, ev)


def test_unknown_command_for_stop_and_switch(agent):
    """§2: stop (and switch) for a command that does not exist give unknown_command."""
    a = agent()
    c = a.client()
    for kind, payload in (("stop", ""), ("switch", "ON"), ("switch", "OFF")):
        topic = c.topic(f"cmd/nosuch/{kind}")
        mark = c.mark()
        c.publish(topic, payload)
        ev = c.wait_error(topic, since=mark)
        assert ev["error"]["code"] == "unknown_command", (kind, ev)


def test_errors_for_a_finished_run(agent):
    """A run that has ended is no longer there for in/signal: unknown_run, never a crash."""
    a = agent()
    c = a.client()
    r = c.run("echo")
    for kind, payload in (("in", "x"), ("signal", "KILL")):
        topic = c.topic(f"run/{r.id}/{kind}")
        c.publish(topic, payload)
        assert c.wait_error(topic)["error"]["code"] == "unknown_run"
    # `eof` to a run that has ended asks for what is already so: no error (a client
    # sends it as a quick run ends, and errors/ is what people alert on).
    mark = c.mark()
    c.publish(c.topic(f"run/{r.id}/eof"), "")
    c.assert_none(c.topic("errors"), since=mark, what="an error for eof after the run ended")


def test_client_with_empty_stdin_raises_no_error(agent):
    """`linewire run DEVICE cmd </dev/null` on a quick command: the client's eof may reach
    the agent after the run ended; nothing appears on errors/."""
    a = agent()
    c = a.client()
    mark = c.mark()
    for _ in range(20):
        r = c.run("echo", wait=False)
        r.eof()
        assert r.wait_final()["state"] == "exited"
    c.assert_none(c.topic("errors"), since=mark, what="an error for a late eof")


def test_group_start(agent, broker):
    """§2: {prefix}/_group/{group}/cmd/{command}/start reaches every device listing the
    group, and only those."""
    a1 = agent(config={"groups": ["g1", "both"]})
    a2 = agent(config={"groups": ["both"]})
    c = a1.client()
    c.subscribe(f"{a1.prefix}/+/run/+/state")

    def group_start(group):
        rt = f"{c.reply_topic_base}/{group}"  # already subscribed: {reply_topic_base}/#
        mark = c.mark()
        c.publish(f"{a1.prefix}/_group/{group}/cmd/echo/start", "{}", response_topic=rt,
                  correlation=group.encode())
        return rt, mark

    rt, mark = group_start("g1")
    reply = c.wait_msg(rt, since=mark).json()
    assert reply["ok"] is True and reply["device"] == a1.device
    c.wait_msg(f"{a1.base}/run/{reply['run']}/state", lambda m: m.json()["state"] == "exited")
    c.assert_none(rt, since=mark, pred=lambda m: m.json()["device"] != a1.device,
                  what="a reply from a device outside the group")

    rt, mark = group_start("both")
    c.wait_for(lambda msgs: len(c.snapshot(rt, mark)) >= 2, what="two replies")
    replies = [m.json() for m in c.snapshot(rt, mark)]
    assert sorted(r["device"] for r in replies) == sorted([a1.device, a2.device])
    assert all(r["ok"] for r in replies)
    for r in replies:
        base = a1.base if r["device"] == a1.device else a2.base
        c.wait_msg(f"{base}/run/{r['run']}/state", lambda m: m.json()["state"] == "exited")

    mark = c.mark()
    c.publish(f"{a1.prefix}/_group/nobody/cmd/echo/start", "{}")
    c.assert_none(f"{a1.prefix}/+/run/+/state", since=mark, what="a run for a foreign group")


def test_a_group_left_is_not_served(agent):
    """A device that left a group no longer runs its starts, even when its persistent
    session (broker.session_expiry) still holds the old subscription."""
    a = agent(config={"groups": ["old"], "broker": {"session_expiry": "1h"}})
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state")
    assert a.stop() == 0
    a.config["groups"] = ["new"]
    with open(a.config_path, "w") as f:
        yaml.safe_dump(a.config, f)
    a.start()
    mark = c.mark()
    c.publish(f"{a.prefix}/_group/old/cmd/echo/start", "{}")
    c.publish(f"{a.prefix}/_group/new/cmd/echo/start", "{}")
    c.wait_msg(f"{a.base}/run/+/state", lambda m: m.payload and m.json()["state"] == "exited",
               since=mark, what="the start for the group it is in")
    time.sleep(0.3 * SLOWDOWN)
    runs = {m.topic for m in c.snapshot(f"{a.base}/run/+/state", mark) if m.payload}
    assert len(runs) == 1, f"a start for a group it left ran too: {runs}"
    c.assert_none(c.topic("errors"), since=mark, what="a refusal for a group it is not in")


def test_group_start_with_client_id(agent):
    """A group start may carry an id: each device runs it under that id."""
    a1 = agent(config={"groups": ["gg"]})
    a2 = agent(config={"groups": ["gg"]})
    c = a1.client()
    rid = unique("g")
    c.subscribe(f"{a1.prefix}/+/run/{rid}/state")
    c.publish(f"{a1.prefix}/_group/gg/cmd/echo/start", {"id": rid})
    for a in (a1, a2):
        c.wait_msg(f"{a.base}/run/{rid}/state", lambda m: m.json()["state"] == "exited")


def test_stop_stops_every_run_of_the_command(agent):
    """§2: cmd/{c}/stop stops every run of the command (TERM); reason `stop`."""
    a = agent(commands={"sleep": SLEEP, "other": SLEEP})
    c = a.client()
    r1 = c.run("sleep", wait=False)
    r2 = c.run("sleep", wait=False)
    r3 = c.run("other", wait=False)
    for r in (r1, r2, r3):
        r.wait_state("running")
    c.publish(c.topic("cmd/sleep/stop"), "")
    for r in (r1, r2):
        f = r.wait_final()
        assert f["state"] == "killed" and f["reason"] == "stop" and f["signal"] == "TERM", f
    c.assert_none(r3.prefix_topic + "/state", since=r3.since,
                  pred=lambda m: m.payload and m.json()["state"] != "running",
                  what="the other command's run ending")
    c.publish(c.topic("cmd/other/stop"), "")
    assert r3.wait_final()["reason"] == "stop"


def test_stop_escalates_to_kill_after_grace(agent, prog):
    """§2/§5: stop = TERM, kill_grace, KILL."""
    p = prog("stubborn.sh", "trap 'echo term' TERM\necho ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"stubborn": {"exec": [p], "kill_grace": "300ms"}})
    c = a.client()
    r = c.run("stubborn", wait=False)
    r.wait_out("ready")
    t0 = time.monotonic()
    c.publish(c.topic("cmd/stubborn/stop"), "")
    f = r.wait_final()
    elapsed = time.monotonic() - t0
    assert f["state"] == "killed" and f["reason"] == "stop" and f["signal"] == "KILL", f
    assert 0.25 <= elapsed <= 3 * SLOWDOWN, elapsed


def test_switch_on_and_off(agent):
    """§2: switch ON starts the command as an empty start request, OFF stops it."""
    a = agent(commands={"sleep": SLEEP})
    c = a.client()
    c.subscribe(c.topic("run/+/state"))
    c.subscribe(c.topic("cmd/sleep/running"))
    mark = c.mark()
    c.publish(c.topic("cmd/sleep/switch"), "ON")
    st = c.wait_msg(c.topic("run/+/state"), lambda m: m.json()["state"] == "running", since=mark)
    rid = st.json()["run"]
    assert NAME_RE.match(rid) and st.json()["command"] == "sleep"
    c.wait_payload(c.topic("cmd/sleep/running"), "ON", since=mark)
    mark = c.mark()
    c.publish(c.topic("cmd/sleep/switch"), "OFF")
    f = c.wait_msg(c.topic(f"run/{rid}/state"), lambda m: m.json()["state"] == "killed",
                   since=mark).json()
    assert f["reason"] == "stop"
    c.wait_payload(c.topic("cmd/sleep/running"), "OFF", since=mark)


def test_last_is_retained_newest_line(agent):
    """§2: cmd/{c}/last: the newest stdout line of the newest run, retained."""
    a = agent(commands={"say": {"exec": ["/usr/bin/printf", "%s\\n"], "args": {"pattern": ".*", "max": 5}}})
    c = a.client()
    c.run("say", args=["a", "b", "c"])
    last = c.fresh_retained(c.topic("cmd/say/last"))
    assert [m.payload for m in last] == [b"c"]
    c.run("say", args=["z"])
    last = c.fresh_retained(c.topic("cmd/say/last"))
    assert [m.payload for m in last] == [b"z"]


def test_retain_last_false(agent):
    a = agent(commands={"say": {"exec": ["/bin/echo", "x"], "retain_last": False}})
    c = a.client()
    c.subscribe(c.topic("cmd/say/last"))
    r = c.run("say")
    assert r.out == [b"x"]
    c.assert_none(c.topic("cmd/say/last"))
    assert c.fresh_retained(c.topic("cmd/say/last"), timeout=0.5) == []


def test_running_on_off(agent):
    """§2: cmd/{c}/running is ON while at least one run is running, else OFF; retained."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}})
    c = a.client()
    initial = c.fresh_retained(c.topic("cmd/cat/running"))
    assert [m.payload for m in initial] == [b"OFF"]
    c.subscribe(c.topic("cmd/cat/running"))
    mark = c.mark()
    r1 = c.run("cat", wait=False)
    r1.wait_state("running")
    m = c.wait_payload(c.topic("cmd/cat/running"), "ON", since=mark)
    assert m.retain
    r2 = c.run("cat", wait=False)
    r2.wait_state("running")
    mark = c.mark()
    r1.eof()
    r1.wait_final()
    # One run is still running: no OFF yet.
    c.assert_none(c.topic("cmd/cat/running"), lambda m: m.payload == b"OFF", since=mark,
                  duration=0.5)
    r2.eof()
    r2.wait_final()
    c.wait_payload(c.topic("cmd/cat/running"), "OFF", since=mark)
    assert [m.payload for m in c.fresh_retained(c.topic("cmd/cat/running"))] == [b"OFF"]


def test_audit_log_line_per_request(agent):
    """§5: every request is logged with its run id, command, args and reply topic."""
    a = agent(commands={"say": {"exec": ["/bin/echo"], "args": {"pattern": "[a-z]+", "max": 2}}})
    c = a.client()
    rid = unique("audit")
    r = c.run("say", args=["alpha", "beta"], id=rid)
    assert r.out == [b"alpha beta"]
    refused = c.start("say", {"id": unique("audit"), "args": ["NOPE"]})
    assert refused.code == "bad_args"
    time.sleep(0.2)
    log = a.log_text()
    lines = [ln for ln in log.splitlines() if re.search("request", ln, re.I)]
    hits = [ln for ln in lines if rid in ln and "say" in ln]
    assert hits, f"no audit line with 'request', {rid} and 'say' in:\n{log[-3000:]}"
    assert any("alpha" in ln for ln in hits), f"args not in the audit line: {hits}"
    assert r.reply.response_topic in log, "the reply topic is not logged"
    assert c.topic("cmd/say/start") in log, "the request topic is not logged"


def test_service_starts_with_agent_and_restarts(agent):
    """§5: a service starts with the agent and restarts after it exits, until `stop`;
    then it stays stopped until started."""
    a = agent(start=False, commands={
        "tick": {"exec": ["/bin/echo", "tick"], "mode": "service", "restart_delay": "200ms"},
    })
    watcher = a.client()  # subscribed before the agent starts
    watcher.subscribe(f"{a.base}/run/+/state")

    def runs(since=0):
        return {m.json()["run"] for m in watcher.snapshot(f"{a.base}/run/+/state", since)
                if m.payload and m.json()["state"] == "running"}

    a.start()
    watcher.wait_for(lambda _: len(runs()) >= 2, what="the service to restart after exiting")
    for m in watcher.snapshot(f"{a.base}/run/+/state"):
        if m.payload:
            assert m.json()["command"] == "tick"
    watcher.publish(f"{a.base}/cmd/tick/stop", "")
    time.sleep(0.6)
    mark = watcher.mark()
    watcher.assert_none(f"{a.base}/run/+/state", since=mark, duration=1.2,
                        pred=lambda m: m.payload and m.json()["state"] == "running",
                        what="the stopped service restarting")
    reply = watcher.start("tick", {})
    assert reply["ok"] is True
    watcher.wait_for(lambda _: len(runs(mark)) >= 2, what="the service restarting after start")
    watcher.publish(f"{a.base}/cmd/tick/stop", "")


def test_service_stop_kills_and_switch_restarts(agent):
    """§2/§5: stop kills a running service (reason stop) and it stays stopped; switch ON
    starts it again."""
    a = agent(start=False, commands={
        "svc": {"exec": ["/bin/cat"], "mode": "service", "restart_delay": "100ms",
                "kill_grace": "300ms"},
    })
    w = a.client()
    w.subscribe(f"{a.base}/run/+/state")
    w.subscribe(f"{a.base}/cmd/svc/running")
    a.start()
    st = w.wait_msg(f"{a.base}/run/+/state", lambda m: m.json()["state"] == "running").json()
    w.wait_payload(f"{a.base}/cmd/svc/running", "ON")
    mark = w.mark()
    w.publish(f"{a.base}/cmd/svc/switch", "OFF")
    f = w.wait_msg(f"{a.base}/run/{st['run']}/state", lambda m: m.json()["state"] == "killed",
                   since=mark).json()
    assert f["reason"] == "stop"
    w.wait_payload(f"{a.base}/cmd/svc/running", "OFF", since=mark)
    w.assert_none(f"{a.base}/run/+/state", since=mark, duration=1.0,
                  pred=lambda m: m.payload and m.json()["state"] == "running",
                  what="the stopped service restarting")
    mark = w.mark()
    w.publish(f"{a.base}/cmd/svc/switch", "ON")
    w.wait_msg(f"{a.base}/run/+/state", lambda m: m.json()["state"] == "running", since=mark)
    w.wait_payload(f"{a.base}/cmd/svc/running", "ON", since=mark)
