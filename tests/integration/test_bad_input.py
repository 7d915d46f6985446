"""SPEC §1 (names from the network) and §3 (bad_request: bad JSON, not an object, wrong
types, bad names, bad signal/switch payloads; the errors topic; a refusal never starts a
process and never stops the agent)."""

import pytest

from harness import no_run_started, still_fine

BAD_NAMES = ["a/b", "+", "#", "a+b", "a#b", ".hidden", "-dash", "_under", "a\u0000b", "x" * 65, "",
             "caf\u00e9", "a b", "a\nb", " lead"]


@pytest.mark.parametrize("payload", [b"{", b"not json", b'{"id": }', b"\xff\xfe\x00\x01",
                                     b'{"id": "a"} trailing', b'{"id": "a", "id": 5'])
def test_bad_json(lw, payload):
    spymark = lw.spy.mark()
    reply = lw.start("echo", payload)
    assert reply.code == "bad_request", reply
    assert reply["ok"] is False
    no_run_started(lw, spymark)


@pytest.mark.parametrize("payload", [b"[]", b'["echo"]', b'"x"', b"5", b"null", b"true"])
def test_not_an_object(lw, payload):
    spymark = lw.spy.mark()
    assert lw.start("echo", payload).code == "bad_request"
    no_run_started(lw, spymark)


@pytest.mark.parametrize("fields", [
    {"id": 5}, {"id": ["a"]}, {"id": {"x": 1}},
    {"args": "5"}, {"args": [5]}, {"args": [None]}, {"args": {"0": "5"}},
    {"stdin": 5}, {"stdin": ["a"]},
    {"timeout": "10"}, {"timeout": -1}, {"timeout": 0}, {"timeout": True}, {"timeout": [1]},
])
def test_wrong_types(lw, fields):
    """§3: a wrong type is bad_request (decided: timeout is a positive number)."""
    spymark = lw.spy.mark()
    reply = lw.start("num", fields)
    assert reply.code == "bad_request", (fields, reply)
    no_run_started(lw, spymark)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_run_ids(lw, name):
    """§1: a run id that does not match the name pattern is bad_request."""
    spymark = lw.spy.mark()
    reply = lw.start("echo", {"id": name})
    assert reply.code == "bad_request", (name, reply)
    no_run_started(lw, spymark)


def test_longest_and_shortest_valid_ids(lw):
    for rid in ("x" * 64, "a", "A.b-c_9", "9"):
        r = lw.run("echo", id=rid)
        assert r.final["run"] == rid


@pytest.mark.parametrize("name", [".x", "-x", "x" * 65, "caf\u00e9", "a b"])
def test_bad_command_names_in_topics(lw, name):
    """§1: a bad name in a topic is bad_request (names are checked before the command)."""
    spymark = lw.spy.mark()
    reply = lw.request(lw.topic(f"cmd/{name}/start"), "{}")
    assert reply.code == "bad_request", (name, reply)
    no_run_started(lw, spymark)


@pytest.mark.parametrize("name", [".x", "-x", "x" * 65])
def test_bad_run_names_in_topics(lw, name):
    for kind, payload in (("in", "x"), ("eof", ""), ("signal", "TERM")):
        topic = lw.topic(f"run/{name}/{kind}")
        mark = lw.mark()
        lw.publish(topic, payload)
        ev = lw.wait_error(topic, since=mark)
        assert ev["error"]["code"] == "bad_request", (kind, ev)


def test_errors_topic_event_format(lw):
    """§3 (decided): {"device", "topic", "error": {"code", "message"}} on errors."""
    topic = lw.topic("cmd/echo/start")
    lw.publish(topic, "[1, 2]")
    ev = lw.wait_error(topic)
    assert ev["device"] == lw.agent.device and ev["topic"] == topic
    assert ev["error"]["code"] == "bad_request" and ev["error"]["message"]


@pytest.mark.parametrize("name", ["FOO", "SEGV", "9", "", "SIG", "SIGFOO", "TERM\n", "TERM KILL"])
def test_bad_signal_names(lw, name):
    """§2: only TERM INT HUP KILL QUIT USR1 USR2 STOP CONT (SIG prefix allowed)."""
    r = lw.run("cat", wait=False)
    r.wait_state("running")
    topic = lw.topic(f"run/{r.id}/signal")
    mark = lw.mark()
    lw.publish(topic, name)
    ev = lw.wait_error(topic, since=mark)
    assert ev["error"]["code"] == "bad_request", (name, ev)
    r.send_in("alive")
    r.wait_out("alive")
    r.eof()
    assert r.wait_final()["state"] == "exited"


@pytest.mark.parametrize("payload", ["MAYBE", "", "{}", "1"])
def test_bad_switch_payload(lw, payload):
    topic = lw.topic("cmd/touch/switch")
    mark = lw.mark()
    spymark = lw.spy.mark()
    lw.publish(topic, payload)
    ev = lw.wait_error(topic, since=mark)
    assert ev["error"]["code"] == "bad_request", (payload, ev)
    no_run_started(lw, spymark)
    assert not lw.marker.exists()


def test_refusals_never_stop_the_agent(lw):
    """§3: a refusal never starts a process and never stops the agent."""
    mark = lw.mark()
    spymark = lw.spy.mark()
    junk = [b"", b"{", b"\x00" * 100, b"\xff" * 5000, b'{"args": ' * 1000, b"[" * 5000 + b"]" * 5000,
            b'{"id": "' + b"x" * 60000 + b'"}']
    for p in junk:
        lw.publish(lw.topic("cmd/nosuch/start"), p)
        lw.publish(lw.topic("cmd/touch/switch"), p)
        lw.publish(lw.topic("run/nosuch/signal"), p)
        lw.publish(lw.topic("cmd/num/start"), p if p else b"[]")
    lw.publish(lw.topic("cmd/num/start"), b'{"args": ["' + b"9" * 50000 + b'"]}')
    lw.wait_for(lambda _: len(lw.snapshot(lw.topic("errors"), mark)) >= 4 * len(junk),
                what="an error event for every refused request")
    no_run_started(lw, spymark)
    assert not lw.marker.exists()
    still_fine(lw)
