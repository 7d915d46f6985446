"""Issue 6, examples/: every example config validates; the sensor service feeds `last`;
the mosquitto ACL (examples/mosquitto/linewire.acl), used as it is by a real mosquitto
with a password file made by mosquitto_passwd, confines each device to its own prefix;
and the mqtts example (examples/mosquitto/mqtts.conf, examples/mqtts.yaml) with
certificates made by openssl here admits the agent with its client certificate and
refuses a client without one."""

import os
import re
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import yaml

from harness import LINEWIRED, QUIET, SLOWDOWN, WAIT, Client, unique

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.mark.parametrize("path", ["examples/linewire.yaml", "examples/homeassistant/linewire.yaml",
                                  "packaging/linewire.yaml"])
def test_example_configs_validate(path):
    r = subprocess.run([LINEWIRED, "--config", os.path.join(ROOT, path), "--check-config"],
                       capture_output=True, text=True, timeout=30 * SLOWDOWN)
    assert r.returncode == 0, r.stdout + r.stderr


def test_homeassistant_automation_is_yaml_for_the_example_entities():
    autos = yaml.safe_load(open(os.path.join(EXAMPLES, "homeassistant", "automation.yaml")))
    assert isinstance(autos, list) and autos
    text = open(os.path.join(EXAMPLES, "homeassistant", "automation.yaml")).read()
    # The entity ids are those discovery gives the example device (SPEC §9).
    for entity in ("button.linewire_pi_kitchen_count", "sensor.linewire_pi_kitchen_count_last",
                   "binary_sensor.linewire_pi_kitchen_count_running",
                   "switch.linewire_pi_kitchen_temperature"):
        assert entity in text, entity
    for a in autos:
        assert {"id", "alias", "trigger", "action"} <= set(a), a


def test_sensor_service_publishes_readings(agent):
    a = agent(commands={"sensor": {"exec": [os.path.join(EXAMPLES, "sensor.sh")],
                                   "mode": "service", "env": {"SENSOR_INTERVAL": "0.2"},
                                   "kill_grace": "1s"}})
    c = a.client()
    c.subscribe(f"{a.base}/cmd/sensor/last")
    readings = c.wait_for(lambda msgs: [m for m in msgs if m.topic.endswith("/last")][:3]
                          if len([m for m in msgs if m.topic.endswith("/last")]) >= 3 else None,
                          what="three sensor readings")
    for m in readings:
        assert re.fullmatch(rb"[0-9]+(\.[0-9]+)?", m.payload), m


# --------------------------------------------------------------------------- ACL


def passwd_file(path, users):
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    first = True
    for user, password in users.items():
        subprocess.run([tool, "-b", *(["-c"] if first else []), str(path), user, password],
                       check=True, capture_output=True, timeout=30)
        first = False
    os.chmod(path, 0o644)  # mosquitto may read it after dropping privileges


def test_acl_confines_each_device_to_its_prefix(agent, make_broker, tmp_path):
    """pi-1's credentials cannot start a command on pi-2, read pi-2's output, or fake
    pi-2's status; they still work on pi-1, and admin's work everywhere."""
    d1, d2 = unique("pia"), unique("pib")
    users = {d1: "pw-" + d1, d2: "pw-" + d2, "admin": "pw-admin"}
    pw = tmp_path / "linewire.passwd"
    passwd_file(pw, users)
    b = make_broker(extra=[f"password_file {pw}",
                           f"acl_file {os.path.join(EXAMPLES, 'mosquitto', 'linewire.acl')}"],
                    anonymous=False)
    markers = {d: tmp_path / f"ran-on-{d}" for d in (d1, d2)}
    admin = {"username": "admin", "password": "pw-admin"}
    agents = {}
    for d in (d1, d2):
        secret = tmp_path / f"{d}.password"
        secret.write_text(users[d] + "\n")
        agents[d] = agent(device=d, prefix="linewire", broker=b, client_auth=admin,
                          commands={"touch": {"exec": ["/usr/bin/touch", str(markers[d])]},
                                    "echo": {"exec": ["/bin/echo", "secret of " + d]}},
                          config={"broker": {"username": d, "password_file": str(secret)}})

    # pi-1 as itself: allowed on its own prefix.
    own = Client(b.port, base=f"linewire/{d1}", prefix="linewire", username=d1,
                 password=users[d1], name="own")
    try:
        own.subscribe(f"linewire/{d1}/run/+/state")
        own.publish(f"linewire/{d1}/cmd/touch/start", "{}")
        own.wait_msg(f"linewire/{d1}/run/+/state", lambda m: m.payload and
                     m.json()["state"] == "exited", what="pi-1's own run")
        assert markers[d1].exists()

        # pi-1 on pi-2: the start is dropped by the broker, pi-2's output stays unseen.
        own.subscribe(f"linewire/{d2}/#")
        since = own.mark()
        as_d1 = [shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub", "-p", str(b.port),
                 "-u", d1, "-P", users[d1], "-q", "1"]
        for t, payload, retain in ((f"linewire/{d2}/cmd/touch/start", "{}", []),
                                   (f"linewire/{d2}/status", "offline", ["-r"])):
            subprocess.run([*as_d1, *retain, "-t", t, "-m", payload], check=True,
                           capture_output=True, timeout=30)
        ctl = agents[d2].client()
        ctl.subscribe(f"linewire/{d2}/cmd/echo/last")
        assert ctl.run("echo").out == [f"secret of {d2}".encode()]  # admin may
        ctl.wait_payload(f"linewire/{d2}/cmd/echo/last", f"secret of {d2}")
        time.sleep(QUIET)
        assert not markers[d2].exists(), "pi-1's credentials started a command on pi-2"
        assert own.connected
        assert own.snapshot(f"linewire/{d2}/#", since) == [], "pi-1 read pi-2's topics"
        # A new subscriber (as admin) gets pi-2's true retained status.
        fresh = Client(b.port, username="admin", password="pw-admin", name="fresh")
        try:
            fresh.subscribe(f"linewire/{d2}/status")
            m = fresh.wait_msg(f"linewire/{d2}/status", what="pi-2's retained status")
            assert m.payload == b"online", m
        finally:
            fresh.close()
        ctl.run("touch")
        assert markers[d2].exists()
    finally:
        own.close()


# --------------------------------------------------------------------------- mqtts


def example_listener_lines(pki):
    """examples/mosquitto/mqtts.conf's listener settings, pointed at this test's files."""
    paths = {"/etc/mosquitto/ca/ca.crt": pki / "ca.crt",
             "/etc/mosquitto/certs/server.crt": pki / "server.crt",
             "/etc/mosquitto/certs/server.key": pki / "server.key"}
    lines, in_listener = [], False
    for line in open(os.path.join(EXAMPLES, "mosquitto", "mqtts.conf")):
        line = line.strip()
        if line.startswith("listener"):
            in_listener = True  # the harness writes its own listener line
            continue
        if not in_listener or not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        lines.append(f"{key} {paths.get(value, value)}")
    assert "require_certificate true" in lines, lines
    return lines


def connects(port, tls, timeout):
    """True if a paho client with these TLS settings gets a CONNACK 0 within timeout."""
    ok = threading.Event()
    c = mqtt.Client(client_id=unique("tls"), protocol=mqtt.MQTTv5)
    c.tls_set(**tls)
    c.on_connect = lambda cl, ud, flags, rc, props=None: rc == 0 and ok.set()
    try:
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        return ok.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()


def test_mqtts_with_client_certificates(agent, make_broker, pki):
    b = make_broker(extra=example_listener_lines(pki), anonymous=False)
    assert b.url.startswith("mqtts://")
    cfg = yaml.safe_load(open(os.path.join(EXAMPLES, "mqtts.yaml")))
    tls = cfg["broker"]["tls"]
    tls.update(ca_file=str(pki / "ca.crt"), cert_file=str(pki / "client.crt"),
               key_file=str(pki / "client.key"))
    client_tls = {"ca": str(pki / "ca.crt"), "cert": str(pki / "client.crt"),
                  "key": str(pki / "client.key")}
    a = agent(broker=b, config={"broker": {"tls": tls}}, client_tls=client_tls)
    assert a.client().run("echo").out == [b"hello"]
    assert not connects(b.port, {"ca_certs": str(pki / "ca.crt")}, 2.0 * SLOWDOWN), \
        "a client without a certificate was admitted"
    assert connects(b.port, {"ca_certs": str(pki / "ca.crt"), "certfile": str(pki / "client.crt"),
                             "keyfile": str(pki / "client.key")}, WAIT)
