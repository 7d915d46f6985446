"""Issue 20, Home Assistant and runs that end (SPEC §4 `cmd/{c}/result`, §9 the `event`
and `text` entities): the retained result after each final state and past keep_runs; the
event's value_template rendered with Jinja2 (StrictUndefined, so a missing field fails)
against the agent's real final states of every kind; the text entity's command_template
rendered the way Home Assistant renders it, published, and the run's argv checked."""

import json
import os
import re
import time

import jinja2
import yaml

HA = "homeassistant"
ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def config(**extra):
    return {"homeassistant": {"discovery": True}, **extra}


def discovery_doc(a, component, node):
    c = a.client(name="ha")
    t = f"{HA}/{component}/{a.device.replace('.', '_')}/{node}/config"
    try:
        c.subscribe(t)
        return c.wait_msg(t, lambda m: m.payload and m.retain).json()
    finally:
        c.close()


def render(template, **variables):
    """As Home Assistant renders a template, but strict: an undefined value is an error."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**variables)


def render_event(doc, payload):
    """HA's MQTT event: value_template with value and value_json, then a JSON object whose
    `event_type` must be one of event_types (homeassistant/components/mqtt/event.py)."""
    out = json.loads(render(doc["value_template"], value=payload, value_json=json.loads(payload)))
    assert isinstance(out, dict), out
    assert out["event_type"] in doc["event_types"], out
    return out


def test_result_is_the_newest_final_state_retained_past_keep_runs(agent):
    """§4: right after the run's final state, the same document on cmd/{c}/result,
    retained; keep_runs clears old run states but never the result."""
    a = agent(commands={"count": {"exec": ["/bin/sh", "-c", "echo $LINEWIRE_RUN; exit 3"]}},
              config={"keep_runs": 1})
    c = a.client()
    c.subscribe(f"{a.base}/cmd/count/result")
    first = c.run("count")
    second = c.run("count")
    assert second.final["exit_code"] == 3
    result = c.wait_msg(f"{a.base}/cmd/count/result",
                        lambda m: m.payload and m.json()["run"] == second.id)
    assert result.json() == second.final
    # Published right after the run's own final state.
    state_at = c.snapshot().index(second.final_msg())
    assert c.snapshot().index(result) > state_at
    # The first run's state is cleared by keep_runs: 1; the result stays, retained.
    c.wait_msg(f"{a.base}/run/{first.id}/state", lambda m: not m.payload, what="the cleared state")
    got = c.fresh_retained(f"{a.base}/cmd/count/result")
    assert [m.json() for m in got] == [second.final]


def test_event_template_renders_every_final_state(agent):
    """§9: exited (with exit_code), killed (signal and reason, no exit_code), failed (error)
    and lost (no exit_code, no signal) all render to an event HA takes, with StrictUndefined."""
    a = agent(commands={"job": {"exec": ["/bin/sh", "-c", "echo one; exit 7"]},
                        "slow": {"exec": ["/bin/sleep", "60"], "kill_grace": "500ms"},
                        "broken": {"exec": ["/nonexistent/program"]}},
              config=config())
    doc = discovery_doc(a, "event", "job")
    assert doc["state_topic"] == f"{a.base}/cmd/job/result"
    c = a.client()
    c.subscribe(f"{a.base}/cmd/+/result", retained=False)

    def result_of(command, run_id):
        return c.wait_msg(f"{a.base}/cmd/{command}/result",
                          lambda m: m.payload and m.json()["run"] == run_id).payload.decode()

    exited = c.run("job")
    e = render_event(doc, result_of("job", exited.id))
    assert e["event_type"] == "exited" and e["exit_code"] == 7 and e["lines"] == 1
    assert e["run"] == exited.id and e["signal"] is None and e["duration_ms"] >= 0

    killed = c.run("slow", wait=False)
    killed.wait_state("running")
    c.publish(f"{a.base}/cmd/slow/stop", b"")
    e = render_event(doc, result_of("slow", killed.id))
    assert e["event_type"] == "killed" and e["exit_code"] is None
    assert e["reason"] == "stop" and e["signal"] == "TERM"

    failed = c.run("broken", expect_ok=False)
    assert failed.reply["error"]["code"] == "spawn_failed"
    e = render_event(doc, result_of("broken", failed.id))
    assert e["event_type"] == "failed" and e["error"]

    lost = c.run("slow", wait=False)
    lost.wait_state("running")
    a.kill()
    since = c.mark()
    a.start()
    m = c.wait_msg(f"{a.base}/cmd/slow/result", lambda m: m.payload and m.json()["run"] == lost.id,
                   since)
    e = render_event(doc, m.payload.decode())
    assert e["event_type"] == "lost" and e["exit_code"] is None and e["signal"] is None


ARGS = ["plain", 'with "double" quotes', "it's", "back\\slash\\\\", "tab\there",
        "ünïcödé ✓ 🎉", "{{ not a template }}", "", " spaced  "]


def test_text_entity_typed_argument_runs_as_one_argv_element(agent):
    """§9: command_template `{"args": [{{ value | tojson }}]}`, rendered for hostile text,
    published as HA would (not retained) to the start topic: the run gets exactly that
    one argument. HA checks `pattern` with re.match first."""
    a = agent(commands={"echoargs": {"exec": ["/usr/bin/python3", "-c", ARGV],
                                     "args": {"pattern": ".*", "max": 1}}},
              config=config())
    doc = discovery_doc(a, "text", "echoargs")
    assert doc["command_topic"] == f"{a.base}/cmd/echoargs/start"
    assert doc["retain"] is False and doc["pattern"] == "^(?:.*)$"
    c = a.client()
    c.subscribe(f"{a.base}/run/+/#", retained=False)
    for arg in ARGS:
        assert re.match(doc["pattern"], arg), arg
        payload = render(doc["command_template"], value=arg)
        since = c.mark()
        c.publish(doc["command_topic"], payload.encode(), retain=doc["retain"], qos=doc["qos"])
        out = c.wait_msg(f"{a.base}/run/+/out", since=since, what=f"the run of {arg!r}")
        assert json.loads(out.payload) == [arg]


def test_text_entity_argument_failing_the_pattern_is_refused_on_errors(agent):
    """Bad input: an argument that fails args.pattern (a client that skips HA's own check)
    is refused with bad_args on errors, and nothing runs."""
    a = agent(commands={"greet": {"exec": ["/bin/echo"], "args": {"pattern": "[a-z]+"}}},
              config=config())
    doc = discovery_doc(a, "text", "greet")
    assert re.match(doc["pattern"], "abc") and not re.match(doc["pattern"], "abc; rm -rf /")
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state", retained=False)
    since = c.mark()
    c.publish(doc["command_topic"], render(doc["command_template"], value="abc; rm -rf /"))
    err = c.wait_error(doc["command_topic"], since)
    assert err["error"]["code"] == "bad_args", err
    c.assert_none(f"{a.base}/run/+/state", since=since, what="a run of a refused argument")


def test_discovery_has_event_and_text_entities(agent):
    """An event for every command HA sees; a text only for commands with arguments that
    accept unsigned requests; a scheduled command's sensor expires after three periods."""
    key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU "
           "alice@laptop")
    a = agent(commands={"greet": {"exec": ["/bin/echo"], "args": {"pattern": "[a-z]+"}},
                        "keyed": {"exec": ["/bin/echo"], "args": {"pattern": "[a-z]+"},
                                  "keys": ["alice"]},
                        "temp": {"exec": ["/bin/echo", "21"], "every": "1m"}},
              config=config(auth={"keys": {"alice": key}}))
    c = a.client(name="ha")
    c.subscribe(f"{HA}/+/+/+/config")
    want = {f"{HA}/event/{a.device}/{n}/config" for n in ("greet", "keyed", "temp")}
    want.add(f"{HA}/text/{a.device}/greet/config")
    c.wait_for(lambda msgs: want <= {m.topic for m in msgs if m.payload}, what=str(want))
    topics = {m.topic for m in c.snapshot() if m.payload}
    assert f"{HA}/text/{a.device}/keyed/config" not in topics
    assert f"{HA}/text/{a.device}/temp/config" not in topics
    sensor = c.wait_msg(f"{HA}/sensor/{a.device}/temp/config").json()
    assert sensor["expire_after"] == 180


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "homeassistant")
ENTITY_RE = re.compile(r"\b(?:button|sensor|binary_sensor|switch|event|text)\.linewire_\w+")


def test_examples_name_entities_the_example_device_has(agent):
    """examples/homeassistant: every linewire entity the automations and the dashboard card
    name is one the example config's discovery really makes."""
    example = yaml.safe_load(open(os.path.join(EXAMPLES, "linewire.yaml")))
    a = agent(commands=example["commands"], device="pi-kitchen", config=config())
    c = a.client(name="ha")
    c.subscribe(f"{HA}/+/+/+/config")
    n = len(example["commands"]) - 1  # uptime is hidden
    c.wait_for(lambda msgs: len([m for m in msgs if "/event/" in m.topic and m.payload]) >= n,
               what="every event entity")
    time.sleep(0.3)
    have = {m.json()["default_entity_id"] for m in c.snapshot(f"{HA}/+/+/+/config") if m.payload}
    named = set()
    for name in ("automation.yaml", "dashboard.yaml"):
        named |= set(ENTITY_RE.findall(open(os.path.join(EXAMPLES, name)).read()))
    assert "event.linewire_pi_kitchen_backup_finished" in named
    assert "text.linewire_pi_kitchen_count_args" in named
    assert named <= have, sorted(named - have)
    card = yaml.safe_load(open(os.path.join(EXAMPLES, "dashboard.yaml")))
    assert card["type"] == "entities" and card["entities"]


def test_backup_automation_notifies_unless_exit_code_0(agent):
    """The example automation's condition, rendered against the event HA makes from real
    final states: exited 0 is quiet; exited 3, killed and failed notify."""
    autos = yaml.safe_load(open(os.path.join(EXAMPLES, "automation.yaml")))
    auto = next(x for x in autos if x["id"] == "linewire_backup_failed")
    condition = auto["condition"][0]["value_template"]
    a = agent(commands={"ok": {"exec": ["/bin/true"]}, "bad": {"exec": ["/bin/sh", "-c", "exit 3"]},
                        "gone": {"exec": ["/nonexistent"]},
                        "slow": {"exec": ["/bin/sleep", "60"], "timeout": "200ms",
                                 "kill_grace": "200ms"}},
              config=config())
    doc = discovery_doc(a, "event", "ok")
    c = a.client()
    for command, notifies in (("ok", False), ("bad", True), ("gone", True), ("slow", True)):
        run = c.run(command, expect_ok=False)
        attributes = render_event(doc, json.dumps(run.wait_final()))
        got = render(condition, trigger={"to_state": {"attributes": attributes}}).strip()
        assert got == str(notifies), (command, attributes, got)


def test_devices_meeting_in_one_discovery_topic_are_warned_about(agent):
    """SPEC §9: devices `x.up` and `x_up` share discovery topics. One config cannot see the
    other device, so the second agent says so when it starts (and still starts)."""
    first = agent(commands={"a": {"exec": ["/bin/true"]}}, device="x.up", config=config())
    discovery_doc(first, "binary_sensor", "a")
    second = agent(commands={"b": {"exec": ["/bin/true"]}}, device="x_up", config=config())
    assert ("another device (linewire_x.up) has discovery configs under this device's topics"
            in second.log_text())
    third = agent(commands={"c": {"exec": ["/bin/true"]}}, device="y_up", config=config())
    assert "another device" not in third.log_text()
