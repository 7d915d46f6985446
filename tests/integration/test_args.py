"""SPEC §3: args (args_not_allowed, bad_args, injection attempts, argv never a shell),
duplicate_id, unknown_command, the order of checks, and retained requests."""

import os
import signal
import time

from harness import SLOWDOWN, no_run_started, unique, wait_until

import pytest


def test_args_not_allowed(lw):
    spymark = lw.spy.mark()
    reply = lw.start("echo", {"args": ["1"]})
    assert reply.code == "args_not_allowed", reply
    no_run_started(lw, spymark)


@pytest.mark.parametrize("args", [["1234"], ["1", "2", "3"], ["a"], [""], ["-1"]])
def test_bad_args(lw, args):
    """§3: each argument must fully match args.pattern; at most args.max of them."""
    spymark = lw.spy.mark()
    reply = lw.start("num", {"args": args})
    assert reply.code == "bad_args", (args, reply)
    no_run_started(lw, spymark)


def test_good_args(lw):
    r = lw.run("num", args=["1", "234"])
    assert r.out == [b"1 234"]
    assert r.final["args"] == ["1", "234"]


@pytest.mark.parametrize("arg_template", ["; touch {m}", "$(touch {m})", "`touch {m}`", "5\n",
                                          "5\ntouch {m}", "../../{m}", "5 6", "5;", "5|touch {m}",
                                          "5&&touch {m}", "5\u0000", " 5", "5 "])
def test_injection_refused_by_pattern(lw, arg_template):
    """§3: arguments must fully match the pattern: injection attempts are bad_args and never
    executed."""
    arg = arg_template.format(m=lw.marker)
    spymark = lw.spy.mark()
    reply = lw.start("num", {"args": [arg]})
    assert reply.code == "bad_args", (arg, reply)
    no_run_started(lw, spymark)
    assert not lw.marker.exists()


def test_args_are_argv_never_a_shell(lw):
    """§3: arguments are passed as argv elements, never through a shell: they are echoed
    literally and nothing they name is executed."""
    m = lw.marker
    args = [f"$(touch {m})", f"`touch {m}`", f"a; touch {m}", f"x && touch {m}", "../../etc/passwd",
            "a b  c", "*", "$HOME", "'quoted'", '"dq"', "", "-n"]
    r = lw.run("say", args=args[:8])
    assert r.out == [x.encode() for x in args[:8]]
    r = lw.run("say", args=args[8:])
    assert r.out == [x.encode() for x in args[8:]]
    assert not m.exists(), "an argument was run by a shell"


def test_duplicate_id_running(lw):
    rid = unique("dup")
    r = lw.run("cat", id=rid, wait=False)
    r.wait_state("running")
    assert lw.start("cat", {"id": rid}).code == "duplicate_id"
    assert lw.start("echo", {"id": rid}).code == "duplicate_id", "ids are per device"
    r.eof()
    r.wait_final()


def test_duplicate_id_finished(lw):
    """§3: the id must be new on this device: a finished run's id is not."""
    rid = unique("dup")
    lw.run("echo", id=rid)
    lw.spy.wait_msg(lw.topic(f"run/{rid}/state"), lambda m: m.json()["state"] == "exited")
    spymark = lw.spy.mark()
    reply = lw.start("echo", {"id": rid})
    assert reply.code == "duplicate_id"
    no_run_started(lw, spymark)


def test_unknown_command(lw):
    reply = lw.start("nosuch", {})
    assert reply.code == "unknown_command"
    assert "nosuch" in reply["error"]["message"]


def test_check_order_command_before_payload(lw):
    """§3: names and the command are checked before the payload's fields."""
    assert lw.start("nosuch", b"not json").code == "unknown_command"
    assert lw.start("nosuch", {"id": "a/b"}).code == "unknown_command"
    assert lw.start("nosuch", {"args": ["1"]}).code == "unknown_command"
    assert lw.request(lw.topic("cmd/.bad/start"), b"not json").code == "bad_request"


def test_retained_requests_refused(agent, tmp_path):
    """§3: a request that arrives as a retained message (at subscribe) is refused with
    bad_request and never runs; the same for stop, in, eof, signal (and switch, group start).
    For a run that does not exist, unknown_run is accepted too: either way nothing happens."""
    marker = tmp_path / "pwned"
    a = agent(start=False, commands={"touch": {"exec": ["/usr/bin/touch", str(marker)]},
                                     "cat": {"exec": ["/bin/cat"]}},
              config={"groups": ["grp"]})
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state")
    # (an empty retained payload would delete the retained message, so no payload is empty)
    must_be_bad_request = {
        f"{a.base}/cmd/touch/start": "{}",
        f"{a.base}/cmd/touch/switch": "ON",
        f"{a.base}/cmd/cat/stop": " ",
        f"{a.prefix}/_group/grp/cmd/touch/start": "{}",
    }
    ghost_run = {
        f"{a.base}/run/ghost/in": "x",
        f"{a.base}/run/ghost/eof": " ",
        f"{a.base}/run/ghost/signal": "KILL",
    }
    for t, p in {**must_be_bad_request, **ghost_run}.items():
        c.publish(t, p, retain=True)
    a.start()
    for t in must_be_bad_request:
        ev = c.wait_error(t)
        assert ev["error"]["code"] == "bad_request", (t, ev)
    for t in ghost_run:
        ev = c.wait_error(t)
        assert ev["error"]["code"] in ("bad_request", "unknown_run"), (t, ev)
    time.sleep(0.3)
    assert not marker.exists(), "a retained start request ran"
    assert not [m for m in c.snapshot(f"{a.base}/run/+/state") if m.payload]
    # The agent does not clear retained messages that are not its own.
    left = c.fresh_retained(f"{a.base}/cmd/touch/start")
    assert [m.payload for m in left] == [b"{}"]
    # And it works normally.
    c.run("cat", stdin="x\n", wait=False).wait_out("x")


def test_retained_requests_refused_live_and_at_resubscribe(agent, make_broker, tmp_path):
    """§3: a retained request is refused with bad_request and never applied, whether it
    arrives live (the agent subscribes with Retain As Published on, so the broker keeps
    the flag: `mosquitto_pub -r` must not run once) or from the broker's store at a
    resubscribe (after a broker restart that keeps retained messages)."""
    b = make_broker(extra=["persistence true", f"persistence_location {tmp_path}/"])
    marker = tmp_path / "ran"
    a = agent(broker=b, commands={"cat": {"exec": ["/bin/cat"]},
                                  "touch": {"exec": ["/usr/bin/touch", str(marker)]}},
              config={"broker": {"reconnect": {"min": "100ms", "max": "500ms"}}})
    c = a.client()
    r = c.run("cat", wait=False)
    r.wait_state("running")
    start_topic = c.topic("cmd/touch/start")
    in_topic = c.topic(f"run/{r.id}/in")
    sig_topic = c.topic(f"run/{r.id}/signal")
    pid = r.reply["pid"]

    def stopped():
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"

    for cmark in (c.mark(), None):
        if cmark is None:  # the second round: the same messages, from the broker's store
            mark = a.watch.mark()
            cmark = c.mark()
            b.restart()
            a.wait_online(since=mark, timeout=15)
        else:
            c.publish(start_topic, "{}", retain=True)
            c.publish(in_topic, "retained line", retain=True)
            c.publish(sig_topic, "STOP", retain=True)
        for t in (start_topic, in_topic, sig_topic):
            ev = c.wait_error(t, since=cmark)
            assert ev["error"]["code"] == "bad_request", (t, ev)
        time.sleep(0.3 * SLOWDOWN)
        assert not stopped(), "a retained STOP was applied"
        assert b"retained line" not in r.out, r.out
        assert not marker.exists(), "a retained start request ran"
    for t in (start_topic, in_topic, sig_topic):
        c.publish(t, "", retain=True)  # clear them
    r.send_in("live")
    r.wait_out("live")
    r.eof()
    assert r.wait_final()["state"] == "exited"
