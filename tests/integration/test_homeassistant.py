"""Issue 6, Home Assistant discovery (SPEC §9, and §11's rule for unsigned requests):
the retained discovery configs with the keys Home Assistant's MQTT integration
requires for each component, pressing a button and flipping a switch the way Home
Assistant does, republishing when Home Assistant comes online, and clearing the configs
of commands that are gone (on SIGHUP, and across a restart through state_dir)."""

import json
import signal

import yaml

from harness import unique

HA = "homeassistant"

# What Home Assistant's MQTT integration requires (or needs to work with linewire) per
# component, beside the common keys checked in check_common().
REQUIRED = {
    "button": {"command_topic", "payload_press", "retain"},
    "sensor": {"state_topic", "value_template"},
    "binary_sensor": {"state_topic", "payload_on", "payload_off"},
    "switch": {"command_topic", "state_topic", "payload_on", "payload_off", "state_on",
               "state_off", "retain"},
    "event": {"state_topic", "event_types", "value_template"},
}


def discovery(a, timeout=2.0):
    """{topic: document} of the retained discovery configs a fresh subscriber gets."""
    c = a.client(name="ha")
    try:
        found = c.fresh_retained(f"{HA}/#", timeout=timeout)
    finally:
        c.close()
    return {m.topic: m.json() for m in found if m.topic.endswith("/config") and m.payload}


def wait_discovery(a, topics):
    c = a.client(name="hawait")
    try:
        c.subscribe(f"{HA}/+/+/+/config")
        c.wait_for(lambda msgs: topics <= {m.topic for m in msgs if m.payload},
                   what=f"discovery configs {sorted(topics)}")
    finally:
        c.close()


def topic(component, a, node):
    return f"{HA}/{component}/{a.device.replace('.', '_')}/{node.replace('.', '_')}/config"


def check_common(doc, a, component, name, unique_id):
    assert doc["name"] == name, doc
    assert doc["unique_id"] == unique_id, doc
    expected = component + "." + "".join(
        ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in unique_id.lower())
    assert doc["default_entity_id"] == expected, doc
    assert "object_id" not in doc, doc
    assert doc["availability_topic"] == f"{a.base}/status", doc
    dev = doc["device"]
    assert dev["identifiers"] == [f"linewire_{a.device}"], dev
    assert dev["name"] == a.device and dev["sw_version"] and dev["model"], dev
    assert REQUIRED[component] <= set(doc), (component, sorted(doc))


def ha_config(**extra):
    return {"homeassistant": {"discovery": True, **extra}}


def test_discovery_configs_have_what_home_assistant_requires(agent):
    """§9: button, sensor and binary_sensor per on-demand command, switch per service,
    all retained, with names, unique_ids, default_entity_ids and the device block."""
    a = agent(commands={"count": {"exec": ["/bin/echo", "1"]},
                        "svc": {"exec": ["/bin/sleep", "60"], "mode": "service"},
                        "quiet": {"exec": ["/bin/true"], "retain_last": False},
                        "hidden": {"exec": ["/bin/true"], "homeassistant": False}},
              config=ha_config(), device=unique("d") + ".x")
    want = {topic("button", a, "count"), topic("sensor", a, "count"),
            topic("binary_sensor", a, "count"), topic("switch", a, "svc"),
            topic("sensor", a, "svc"), topic("binary_sensor", a, "svc"),
            topic("button", a, "quiet"), topic("binary_sensor", a, "quiet"),
            topic("event", a, "count"), topic("event", a, "svc"), topic("event", a, "quiet")}
    wait_discovery(a, want)
    docs = discovery(a)
    assert set(docs) == want, sorted(docs)
    base = f"linewire_{a.device}"

    b = docs[topic("button", a, "count")]
    check_common(b, a, "button", "count", f"{base}_count")
    assert b["command_topic"] == f"{a.base}/cmd/count/start"
    assert b["payload_press"] == "{}" and b["retain"] is False

    s = docs[topic("sensor", a, "count")]
    check_common(s, a, "sensor", "count", f"{base}_count_last")
    assert s["state_topic"] == f"{a.base}/cmd/count/last"
    assert s["value_template"] == "{{ value[:255] }}"

    r = docs[topic("binary_sensor", a, "count")]
    check_common(r, a, "binary_sensor", "count running", f"{base}_count_running")
    assert r["state_topic"] == f"{a.base}/cmd/count/running"
    assert (r["payload_on"], r["payload_off"]) == ("ON", "OFF")

    sw = docs[topic("switch", a, "svc")]
    check_common(sw, a, "switch", "svc", f"{base}_svc")
    assert sw["command_topic"] == f"{a.base}/cmd/svc/switch"
    assert sw["state_topic"] == f"{a.base}/cmd/svc/running"
    assert (sw["payload_on"], sw["payload_off"]) == ("ON", "OFF")
    assert (sw["state_on"], sw["state_off"]) == ("ON", "OFF")
    assert sw["retain"] is False

    e = docs[topic("event", a, "count")]
    check_common(e, a, "event", "count finished", f"{base}_count_finished")
    assert e["state_topic"] == f"{a.base}/cmd/count/result"
    assert e["event_types"] == ["exited", "killed", "failed", "lost"]


def test_pressing_the_button_starts_a_run(agent):
    """A press is what HA publishes: payload_press on command_topic, not retained."""
    a = agent(commands={"count": {"exec": ["/bin/echo", "pressed"]}}, config=ha_config())
    wait_discovery(a, {topic("button", a, "count")})
    b = discovery(a)[topic("button", a, "count")]
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state", retained=False)
    c.subscribe(f"{a.base}/cmd/count/last", retained=False)
    since = c.mark()
    c.publish(b["command_topic"], b["payload_press"], retain=b["retain"], qos=b["qos"])
    c.wait_msg(f"{a.base}/run/+/state", lambda m: m.payload and m.json()["state"] == "exited",
               since, what="the run started by the button")
    # What the sensor reads.
    c.wait_payload(f"{a.base}/cmd/count/last", "pressed", since)


def test_service_switch_on_and_off(agent):
    """The switch's ON starts the service, OFF stops it; its state is `running`."""
    a = agent(commands={"svc": {"exec": ["/bin/sleep", "60"], "mode": "service",
                                "kill_grace": "500ms"}}, config=ha_config())
    wait_discovery(a, {topic("switch", a, "svc")})
    sw = discovery(a)[topic("switch", a, "svc")]
    c = a.client()
    c.subscribe(sw["state_topic"])
    c.wait_payload(sw["state_topic"], sw["state_on"])  # services start with the agent
    since = c.mark()
    c.publish(sw["command_topic"], sw["payload_off"], retain=sw["retain"])
    c.wait_payload(sw["state_topic"], sw["state_off"], since)
    since = c.mark()
    c.publish(sw["command_topic"], sw["payload_on"], retain=sw["retain"])
    c.wait_payload(sw["state_topic"], sw["state_on"], since)


def test_republished_when_home_assistant_comes_online(agent):
    """HA's birth message makes the agent publish every discovery config again."""
    a = agent(commands={"count": {"exec": ["/bin/true"]}}, config=ha_config())
    t = topic("button", a, "count")
    wait_discovery(a, {t})
    c = a.client()
    c.subscribe(f"{HA}/+/+/+/config", retained=False)
    c.assert_none(f"{HA}/#", duration=0.5, what="a config before HA's birth")
    since = c.mark()
    c.publish(f"{HA}/status", "online")
    every = {t, topic("sensor", a, "count"), topic("binary_sensor", a, "count"),
             topic("event", a, "count")}
    c.wait_for(lambda msgs: every <= {m.topic for m in msgs[since:] if m.payload},
               what="every config again")
    # `offline` (HA's last will) asks for nothing.
    since = c.mark()
    c.publish(f"{HA}/status", "offline")
    c.assert_none(f"{HA}/+/+/+/config", since=since, what="a config after HA went offline")


def test_other_prefix_and_birth_topic(agent):
    a = agent(commands={"count": {"exec": ["/bin/true"]}},
              config=ha_config(prefix="ha-test"))
    c = a.client()
    c.subscribe("ha-test/button/+/+/config")
    c.wait_msg(f"ha-test/button/{a.device}/count/config", lambda m: m.payload and m.retain)
    since = c.mark()
    c.publish("ha-test/status", "online")
    c.wait_msg(f"ha-test/button/{a.device}/count/config", lambda m: m.payload, since)


def test_signed_only_commands_get_no_controls(agent):
    """§11: HA cannot sign, so no button or switch for a command that needs a signature."""
    key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABFecenpo/dUt0uXXh6ZQK6fsXERFlIXby54MsRZSMU "
           "alice@laptop")
    a = agent(commands={"open": {"exec": ["/bin/true"], "unsigned": True},
                        "strict": {"exec": ["/bin/true"]},
                        "keyed": {"exec": ["/bin/true"], "keys": ["alice"]},
                        "svc": {"exec": ["/bin/sleep", "60"], "mode": "service"}},
              config={**ha_config(), "auth": {"keys": {"alice": key}, "require": True}})
    wait_discovery(a, {topic("button", a, "open"), topic("binary_sensor", a, "svc")})
    docs = discovery(a)
    assert topic("button", a, "open") in docs
    for name in ("strict", "keyed"):
        assert topic("button", a, name) not in docs, sorted(docs)
        assert topic("sensor", a, name) in docs and topic("binary_sensor", a, name) in docs
    assert topic("switch", a, "svc") not in docs, sorted(docs)


def rewrite(a, commands=None, **top):
    cfg = json.loads(json.dumps(a.config))
    if commands is not None:
        cfg["commands"] = commands
    cfg.update(top)
    with open(a.config_path, "w") as f:
        f.write(yaml.safe_dump(cfg, sort_keys=False))


def test_removed_commands_are_cleared_on_reload(agent):
    """SIGHUP: the configs of a removed command get an empty retained message; a command
    hidden with `homeassistant: false` too; turning discovery off clears everything."""
    a = agent(commands={"keep": {"exec": ["/bin/true"]}, "gone": {"exec": ["/bin/true"]},
                        "hide": {"exec": ["/bin/true"]}}, config=ha_config())
    gone = {topic(k, a, n) for k in ("button", "sensor", "binary_sensor") for n in ("gone", "hide")}
    wait_discovery(a, gone | {topic("button", a, "keep")})
    c = a.client()
    c.subscribe(f"{HA}/+/+/+/config", retained=False)
    since = c.mark()
    rewrite(a, {"keep": {"exec": ["/bin/true"]},
                "hide": {"exec": ["/bin/true"], "homeassistant": False},
                "new": {"exec": ["/bin/true"]}})
    a.send_signal(signal.SIGHUP)
    c.wait_for(lambda msgs: gone <= {m.topic for m in msgs[since:] if not m.payload},
               what="empty retained configs for the removed and hidden commands")
    c.wait_msg(topic("button", a, "new"), lambda m: m.payload, since)
    docs = discovery(a)
    assert not any("/gone/" in t or "/hide/" in t for t in docs), sorted(docs)
    assert topic("button", a, "keep") in docs and topic("button", a, "new") in docs

    since = c.mark()
    rewrite(a, {"keep": {"exec": ["/bin/true"]}, "new": {"exec": ["/bin/true"]}},
            homeassistant={"discovery": False})
    a.send_signal(signal.SIGHUP)
    c.wait_for(lambda msgs: {topic("button", a, "keep"), topic("button", a, "new")} <=
               {m.topic for m in msgs[since:] if not m.payload},
               what="every config cleared once discovery is off")
    assert discovery(a, timeout=1.0) == {}


def test_commands_removed_while_down_are_cleared(agent, tmp_path):
    """With state_dir, the agent remembers what it published: a command removed from
    the config while the agent was stopped is cleared when it starts again."""
    state = str(tmp_path / "state")
    a = agent(commands={"keep": {"exec": ["/bin/true"]}, "gone": {"exec": ["/bin/true"]}},
              config={**ha_config(), "state_dir": state})
    wait_discovery(a, {topic("button", a, "gone"), topic("button", a, "keep")})
    assert a.stop() == 0
    rewrite(a, {"keep": {"exec": ["/bin/true"]}})
    c = a.client()
    c.subscribe(f"{HA}/+/+/+/config", retained=False)
    a.start()
    c.wait_for(lambda msgs: {topic(k, a, "gone") for k in ("button", "sensor", "binary_sensor")}
               <= {m.topic for m in msgs if not m.payload},
               what="empty retained configs for the command removed while down")
    docs = discovery(a)
    assert not any("/gone/" in t for t in docs), sorted(docs)
    assert topic("button", a, "keep") in docs
