"""SPEC §5 limits: limits.max_runs, max_instances with on_busy reject/queue/replace and
queue_max, limits.max_line, max_output, limits.max_payload."""

import signal

import pytest
import yaml

from harness import unique

CAT = {"exec": ["/bin/cat"], "kill_grace": "300ms"}


def test_max_runs(agent):
    """§3/§5: limits.max_runs across commands: busy."""
    a = agent(commands={"a": CAT, "b": CAT}, config={"limits": {"max_runs": 2}})
    c = a.client()
    r1 = c.run("a", wait=False)
    r2 = c.run("b", wait=False)
    refused = c.start("a", {"id": unique("r")})
    assert refused.code == "busy", refused
    refused = c.start("b", {})
    assert refused.code == "busy", refused
    r1.eof()
    r1.wait_final()
    r3 = c.run("b", wait=False)
    assert r3.reply["ok"] is True
    for r in (r2, r3):
        r.eof()
        r.wait_final()


def test_max_instances_reject(agent):
    """§5: on_busy: reject (the default) gives busy."""
    a = agent(commands={"one": dict(CAT, max_instances=1), "other": CAT})
    c = a.client()
    r1 = c.run("one", wait=False)
    rid = unique("r")
    refused = c.start("one", {"id": rid})
    assert refused.code == "busy"
    assert refused.data["ok"] is False
    # Other commands are not affected, and a refused id was never used.
    r2 = c.run("other", wait=False)
    r1.eof()
    r1.wait_final()
    r3 = c.run("one", id=rid, wait=False)
    for r in (r2, r3):
        r.eof()
        assert r.wait_final()["state"] == "exited"


def test_max_instances_queue(agent):
    """§5: on_busy: queue — the reply says "queued": true (no pid), the run starts when a
    slot frees; the queue is bounded by queue_max."""
    a = agent(commands={"q": dict(CAT, max_instances=1, on_busy="queue", queue_max=1)})
    c = a.client()
    r1 = c.run("q", wait=False)
    r1.wait_state("running")
    r2 = c.run("q", wait=False)
    assert r2.reply["ok"] is True and r2.reply.get("queued") is True, r2.reply
    assert "pid" not in r2.reply.data or r2.reply["pid"] is None
    assert r2.reply["run"] == r2.id and r2.reply["command"] == "q"
    refused = c.start("q", {"id": unique("r")})
    assert refused.code == "busy", f"queue_max 1 exceeded: {refused}"
    c.assert_none(f"{r2.prefix_topic}/state", since=r2.since,
                  pred=lambda m: m.payload and m.json()["state"] == "running",
                  what="the queued run starting while the slot is taken")
    r1.eof()
    r1.wait_final()
    st = r2.wait_state("running")
    assert isinstance(st["pid"], int)
    r2.send_in("from the queue")
    r2.wait_out("from the queue")
    r2.eof()
    assert r2.wait_final()["state"] == "exited"


@pytest.mark.parametrize("how", ["stop", "reload", "shutdown"])
def test_a_dropped_queued_run_still_ends(agent, how):
    """§4: a queued start that never runs (its command stopped, removed by a reload, or the
    agent shut down) gets a final state, `failed` with the reason, so whoever was told
    "queued": true does not wait forever."""
    a = agent(commands={"q": dict(CAT, max_instances=1, on_busy="queue"),
                        "echo": {"exec": ["/bin/echo", "hi"]}})
    c = a.client()
    r1 = c.run("q", wait=False)
    r1.wait_state("running")
    r2 = c.run("q", wait=False)
    assert r2.reply.get("queued") is True, r2.reply
    if how == "stop":
        c.publish(c.topic("cmd/q/stop"), "")
        why = "stopped while queued"
    elif how == "reload":
        cfg = dict(a.config)
        cfg["commands"] = {"echo": a.config["commands"]["echo"]}
        with open(a.config_path, "w") as f:
            yaml.safe_dump(cfg, f)
        a.send_signal(signal.SIGHUP)
        why = "removed from the configuration"
    else:
        assert a.stop() == 0
        why = "shut down"
    final = r2.wait_final()
    assert final["state"] == "failed" and why in final["error"], final
    assert final["run"] == r2.id and final["command"] == "q"
    if how == "reload":
        r1.eof()
        assert r1.wait_final()["state"] == "exited"


def test_a_signal_cancels_a_queued_run(agent):
    """A queued run has no process yet: TERM, INT, HUP, QUIT or KILL cancel it, and it
    ends as if the signal had ended it (killed, reason signal), so Ctrl-C on a queued
    `linewire run` does not leave it to start later; STOP, CONT, USR1 and USR2 have
    nothing to act on and are refused with the reason. The run ahead goes on."""
    a = agent(commands={"q": dict(CAT, max_instances=1, on_busy="queue")})
    c = a.client()
    r1 = c.run("q", wait=False)
    r1.wait_state("running")
    r2 = c.run("q", wait=False)
    assert r2.reply.get("queued") is True, r2.reply
    refused = c.request(c.topic(f"run/{r2.id}/signal"), b"STOP")
    assert refused.code == "bad_request" and "queued" in refused["error"]["message"], refused
    reply = c.request(c.topic(f"run/{r2.id}/signal"), b"INT")
    assert reply.get("ok") is True, reply
    final = r2.wait_final()
    assert (final["state"], final["reason"], final["signal"]) == ("killed", "signal", "INT")
    r1.eof()
    assert r1.wait_final()["state"] == "exited"
    c.assert_none(f"{r2.prefix_topic}/state", since=r2.since,
                  pred=lambda m: m.payload and m.json()["state"] == "running",
                  what="the cancelled run starting after all")
    assert c.request(c.topic(f"run/{r2.id}/signal"), b"INT").code == "unknown_run"


def test_queued_run_keeps_its_stdin_field(agent):
    a = agent(commands={"q": dict(CAT, max_instances=1, on_busy="queue")})
    c = a.client()
    r1 = c.run("q", wait=False)
    r1.wait_state("running")
    r2 = c.run("q", stdin="queued text\n", wait=False)
    assert r2.reply.get("queued") is True
    r1.eof()
    r2.wait_out("queued text")
    r2.eof()
    r2.wait_final()


def test_max_instances_replace(agent):
    """§5: on_busy: replace — the oldest run is killed (reason replaced), then the new one
    starts."""
    a = agent(commands={"r": dict(CAT, max_instances=1, on_busy="replace")})
    c = a.client()
    r1 = c.run("r", wait=False)
    r1.wait_state("running")
    r2 = c.run("r", wait=False)
    assert r2.reply["ok"] is True and r2.reply.get("queued") is not True
    f1 = r1.wait_final()
    assert f1["state"] == "killed" and f1["reason"] == "replaced" and f1["signal"] == "TERM", f1
    r2.wait_state("running")
    r2.send_in("new")
    r2.wait_out("new")
    r2.eof()
    assert r2.wait_final()["state"] == "exited"


def test_replace_kills_before_starting(agent, prog):
    """§5: "kill the oldest run, reason replaced, then start": the new run's process starts
    after the old one is gone (a run that needs KILL after kill_grace)."""
    p = prog("stubborn.sh", "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"r": {"exec": [p], "max_instances": 1, "on_busy": "replace",
                              "kill_grace": "300ms"}})
    c = a.client()
    r1 = c.run("r", wait=False)
    r1.wait_out("ready")
    r2 = c.run("r", wait=False)
    f1 = r1.wait_final()
    assert f1["reason"] == "replaced" and f1["signal"] == "KILL", f1
    r2.wait_out("ready")
    first_new = min(m.index for m in r2.out_msgs)
    assert r1.final_msg().index < first_new, "the new run produced output before the old ended"
    c.publish(c.topic("cmd/r/stop"), "")
    r2.wait_final()


def test_max_line_splits_long_lines(agent):
    """§2: a line longer than limits.max_line is published in pieces of at most that size
    (a 10-byte max_line and a 25-byte line: 3 pieces)."""
    a = agent(commands={"p": {"exec": ["/usr/bin/printf",
                                       "abcdefghijklmnopqrstuvwxy\\n0123456789ABCDEFGHIJ\\nshort\\n0123456789\\n"]}},
              config={"limits": {"max_line": 10}})
    r = a.client().run("p")
    assert r.out == [b"abcdefghij", b"klmnopqrst", b"uvwxy", b"0123456789", b"ABCDEFGHIJ",
                     b"short", b"0123456789"]
    assert [m.seq for m in r.out_msgs] == list(range(1, 8))
    assert r.final["lines"] == 7


def test_max_line_with_crlf_and_no_final_newline(agent):
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "0123456789ab\\r\\nxyz"]}},
              config={"limits": {"max_line": 10}})
    r = a.client().run("p")
    assert r.out == [b"0123456789", b"ab", b"xyz"]


def test_max_line_on_stderr(agent, prog):
    p = prog("e.sh", "printf 'abcdefghijklmnopqrstuvwxy\\n' >&2\n")
    a = agent(commands={"e": {"exec": [p]}}, config={"limits": {"max_line": 10}})
    r = a.client().run("e")
    assert r.err == [b"abcdefghij", b"klmnopqrst", b"uvwxy"]
    assert [m.seq for m in r.err_msgs] == [1, 2, 3]


def test_default_max_line_is_64k(agent, prog):
    p = prog("long.py", "print('x' * 65536 + 'y' * 10)\n", shebang="/usr/bin/python3")
    a = agent(commands={"long": {"exec": [p]}})
    r = a.client().run("long")
    assert r.out == [b"x" * 65536, b"y" * 10]


def test_max_output_truncates(agent, prog, tmp_path):
    """§5: past max_output the further lines are discarded and counted in `dropped`; the
    final state says truncated: true; the run goes on."""
    done = tmp_path / "done"
    p = prog("chatty.sh", f"i=0\nwhile [ $i -lt 30 ]; do echo line-$i; i=$((i+1)); done\n"
                          f"touch {done}\nexit 4\n")
    a = agent(commands={"chatty": {"exec": [p], "max_output": 100}})
    r = a.client().run("chatty")
    f = r.final
    assert f["state"] == "exited" and f["exit_code"] == 4, f
    assert done.exists(), "the run did not go on after max_output"
    assert f.get("truncated") is True, f
    assert f["dropped"] > 0
    assert sum(len(x) for x in r.out) <= 100
    assert len(r.out) >= 5, "far fewer lines than max_output allows"
    assert len(r.out) + f["dropped"] == 30, (len(r.out), f)
    assert r.out == [f"line-{i}".encode() for i in range(len(r.out))]


def test_max_payload(agent):
    """§3: a payload over limits.max_payload is bad_request; size is checked first (before
    the command: an unknown command with an oversize payload is still bad_request)."""
    a = agent(commands={"cat": CAT}, config={"limits": {"max_payload": "1KiB"}})
    c = a.client()
    big = '{"stdin": "' + "x" * 1100 + '"}'
    assert c.start("cat", big).code == "bad_request"
    assert c.start("nosuch", big).code == "bad_request"
    r = c.run("cat", stdin="x" * 900 + "\n", wait=False)  # a payload under 1 KiB
    assert r.reply["ok"] is True
    rid = r.id
    # An oversize `in` is refused and not written.
    topic = c.topic(f"run/{rid}/in")
    c.publish(topic, "y" * 1100)
    assert c.wait_error(topic)["error"]["code"] == "bad_request"
    c.publish(c.topic(f"run/{rid}/eof"), "")
    c.wait_msg(c.topic(f"run/{rid}/state"), lambda m: m.payload and m.json()["state"] == "exited")
    out = [m.payload for m in c.snapshot(c.topic(f"run/{rid}/out"))]
    assert out == [b"x" * 900]
