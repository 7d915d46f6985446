"""SPEC §2 (status, info, QoS), §6 (presence, last will, reconnect, clean session,
message expiry) and the broker options of §7 (3.1.1, username/password_file, TLS)."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from harness import ISO_RE, QUIET, SLOWDOWN, WAIT, Client, unique, wait_until


def test_status_online_is_retained(agent):
    """§2/§6: `online` on {prefix}/{device}/status, retained, QoS 1."""
    a = agent()
    msgs = a.watch.fresh_retained(f"{a.base}/status")
    assert [m.payload for m in msgs] == [b"online"]
    assert msgs[0].retain and msgs[0].qos == 1


def test_clean_shutdown_publishes_offline(agent):
    """§6: on a clean shutdown `offline` is published (retained) before disconnecting;
    with a clean DISCONNECT the broker does not send the will, so this is the agent's own."""
    a = agent()
    mark = a.watch.mark()
    assert a.stop() == 0
    m = a.watch.wait_payload(f"{a.base}/status", "offline", since=mark)
    assert m.retain
    assert [m.payload for m in a.watch.fresh_retained(f"{a.base}/status")] == [b"offline"]


def test_last_will_on_sigkill(agent):
    """§6: the last will is `offline`, retained, QoS 1."""
    a = agent(config={"broker": {"keepalive": "2s"}})
    mark = a.watch.mark()
    t0 = time.monotonic()
    a.kill()
    m = a.watch.wait_payload(f"{a.base}/status", "offline", since=mark, timeout=4.5 * SLOWDOWN)
    assert time.monotonic() - t0 <= 4.5 * SLOWDOWN
    assert m.retain and m.qos == 1
    assert [m.payload for m in a.watch.fresh_retained(f"{a.base}/status")] == [b"offline"]


def test_last_will_after_keepalive_then_reconnect(agent):
    """§6: an agent that goes silent (SIGSTOP: its socket stays open) is declared `offline`
    by its will once the broker notices the missed keepalive (2 s; 1.5 x keepalive, but
    mosquitto 2.0 checks keepalives only every few seconds, so the bound is loose); once it
    runs again it reconnects by itself and publishes `online` again."""
    a = agent(config={"broker": {"keepalive": "1s", "reconnect": {"min": "100ms", "max": "1s"}}})
    mark = a.watch.mark()
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGSTOP)
    try:
        a.watch.wait_payload(f"{a.base}/status", "offline", since=mark, timeout=10 * SLOWDOWN)
        elapsed = time.monotonic() - t0
        assert elapsed <= 1.5 * SLOWDOWN + 5, f"will after {elapsed:.1f}s, keepalive 1s"
        mark = a.watch.mark()
    finally:
        os.kill(a.pid, signal.SIGCONT)
    a.wait_online(since=mark, timeout=WAIT)
    c = a.client()
    assert c.run("echo").out == [b"hello"]


def test_info_document(agent):
    """§6: the retained info document and its fields."""
    a = agent(commands={
        "plain": {"exec": ["/bin/echo"]},
        "counted": {"exec": ["/bin/echo"], "args": {"pattern": "[0-9]+", "max": 2},
                    "max_instances": 3},
        "svc": {"exec": ["/bin/cat"], "mode": "service"},
    }, config={"groups": ["g1", "g2"], "limits": {"max_runs": 7}})
    c = a.client()
    c.subscribe(f"{a.base}/info")
    m = c.wait_msg(f"{a.base}/info", lambda m: m.json()["runs"]["active"] == 1,
                   what="info with the service's run active")
    info = m.json()
    assert m.retain and m.qos == 1
    for key in ("device", "version", "host", "started", "commands", "runs", "groups", "websocket"):
        assert key in info, f"info lacks {key}: {info}"
    assert info["device"] == a.device
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["host"], str) and info["host"]
    assert ISO_RE.match(info["started"]), info["started"]
    assert info["groups"] == ["g1", "g2"]
    assert info["websocket"] is None
    assert info["runs"] == {"active": 1, "max": 7}
    cmds = info["commands"]
    assert set(cmds) == {"plain", "counted", "svc"}
    assert cmds["plain"]["args"] is False and cmds["plain"]["mode"] == "on_demand"
    assert cmds["counted"] == {"args": True, "max_instances": 3, "mode": "on_demand"} or (
        cmds["counted"]["args"] is True and cmds["counted"]["max_instances"] == 3
        and cmds["counted"]["mode"] == "on_demand")
    assert cmds["svc"]["mode"] == "service" and cmds["svc"]["args"] is False
    assert isinstance(cmds["plain"]["max_instances"], int)
    # The version is the agent's own.
    r = subprocess.run([a.proc.args[0], "--version"], capture_output=True, text=True, timeout=10)
    assert info["version"] in r.stdout + r.stderr


def test_info_refreshed_when_runs_start_and_end(agent):
    """§6: info is refreshed when runs start or end."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}})
    c = a.client()
    c.subscribe(f"{a.base}/info")
    c.wait_msg(f"{a.base}/info", lambda m: m.json()["runs"]["active"] == 0)
    mark = c.mark()
    r = c.run("cat", wait=False)
    r.wait_state("running")
    c.wait_msg(f"{a.base}/info", lambda m: m.json()["runs"]["active"] == 1, since=mark,
               what="info with 1 active run")
    mark = c.mark()
    r.eof()
    r.wait_final()
    m = c.wait_msg(f"{a.base}/info", lambda m: m.json()["runs"]["active"] == 0, since=mark,
                   what="info with 0 active runs")
    assert m.retain


def test_info_rate_limited_and_ends_current(agent):
    """§6: info at most once a second, and the last one tells the truth (0 active)."""
    a = agent(commands={"t": {"exec": ["/bin/true"]}})
    c = a.client()
    c.subscribe(f"{a.base}/info")
    c.wait_msg(f"{a.base}/info")
    time.sleep(1.1)  # let the rate limiter's window pass
    mark = c.mark()
    t0 = time.monotonic()
    for _ in range(8):
        c.run("t")
    burst = time.monotonic() - t0
    c.wait_msg(f"{a.base}/info", lambda m: m.json()["runs"]["active"] == 0, since=mark)
    time.sleep(1.3)
    infos = [m.json() for m in c.snapshot(f"{a.base}/info", mark)]
    assert infos[-1]["runs"]["active"] == 0
    allowed = int(burst + 1.3) + 2
    assert len(infos) <= allowed, f"{len(infos)} info documents in {burst + 1.3:.1f}s"


def test_reconnect_after_broker_restart(agent, broker):
    """§6: reconnect by itself, resubscribe, republish status and info; runs keep going
    while the broker is away; requests work afterwards."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}, "echo": {"exec": ["/bin/echo", "hi"]}},
              config={"broker": {"reconnect": {"min": "100ms", "max": "500ms"}}})
    c = a.client()
    c.subscribe(f"{a.base}/info")
    r = c.run("cat", wait=False)
    r.wait_state("running")
    mark = a.watch.mark()
    cmark = c.mark()
    broker.restart()  # same port; persistence is off, so every retained message is gone
    a.wait_online(since=mark, timeout=15 * SLOWDOWN)
    c.wait_msg(f"{a.base}/info", since=cmark, timeout=WAIT, what="info republished")
    # The run survived the outage and is still wired to its topics.
    r.send_in("after the outage")
    r.wait_out("after the outage", timeout=WAIT)
    r.eof()
    assert r.wait_final()["state"] == "exited"
    # And new requests are served (the agent resubscribed).
    assert c.run("echo").out == [b"hi"]


def test_reconnect_honours_backoff_config(agent, broker):
    """Decided (§7 extra keys): broker.reconnect {min, max} bounds the reconnect back-off:
    with max 500ms the agent is back within about a second of the broker's return."""
    a = agent(config={"broker": {"reconnect": {"min": "100ms", "max": "500ms"}}})
    mark = a.watch.mark()
    broker.stop()
    broker.fixed_port = True
    time.sleep(0.3)
    broker.start()
    t0 = time.monotonic()
    a.wait_online(since=mark, timeout=15 * SLOWDOWN)
    elapsed = time.monotonic() - t0
    assert elapsed <= 2.0 * SLOWDOWN, f"online {elapsed:.1f}s after the broker came back " \
                                      "(reconnect max 500ms)"


def test_mqtt_311(agent, broker):
    """§2/§3: MQTT 3.1.1 mode: reply_to + correlation in the payload, no seq user property,
    lines/err_lines in the final state."""
    a = agent(commands={
        "lines": {"exec": ["/usr/bin/printf", "a\\nb\\nc\\n"]},
        "cat": {"exec": ["/bin/cat"]},
    }, config={"broker": {"protocol": "3.1.1"}})
    watcher = a.client()  # MQTT 5: would show user properties if there were any
    c3 = Client(broker.port, a.base, a.prefix, protocol=4, name="v3")
    try:
        rid = unique("r")
        watcher.subscribe(f"{a.base}/run/{rid}/#")
        rt = f"lwtest/_client/{c3.id}/reply"
        c3.subscribe(rt)
        c3.publish(f"{a.base}/cmd/lines/start", {"id": rid, "reply_to": rt, "correlation": "c-17"})
        reply = c3.wait_msg(rt).json()
        assert reply["ok"] is True and reply["run"] == rid and reply["command"] == "lines", reply
        assert reply["device"] == a.device and isinstance(reply["pid"], int)
        assert reply.get("correlation") == "c-17", reply
        final = watcher.wait_msg(f"{a.base}/run/{rid}/state",
                                 lambda m: m.json()["state"] == "exited").json()
        out = watcher.snapshot(f"{a.base}/run/{rid}/out")
        assert [m.payload for m in out] == [b"a", b"b", b"c"]
        assert all(m.seq is None and not m.user for m in out), out
        assert final["lines"] == 3 and final["err_lines"] == 0
        # A refusal goes to reply_to too, with the correlation echoed.
        mark = c3.mark()
        c3.publish(f"{a.base}/cmd/nope/start", {"reply_to": rt, "correlation": "c-18"})
        refusal = c3.wait_msg(rt, since=mark).json()
        assert refusal["ok"] is False and refusal["error"]["code"] == "unknown_command"
        assert refusal.get("correlation") == "c-18"
        # Without reply_to: the errors topic.
        c3.publish(f"{a.base}/cmd/nope/start", "{}")
        ev = watcher.wait_error(f"{a.base}/cmd/nope/start")
        assert ev["error"]["code"] == "unknown_command"
        # in/eof work the same way.
        rid2 = unique("r")
        watcher.subscribe(f"{a.base}/run/{rid2}/#")
        c3.publish(f"{a.base}/cmd/cat/start", {"id": rid2})
        watcher.wait_msg(f"{a.base}/run/{rid2}/state", lambda m: m.json()["state"] == "running")
        c3.publish(f"{a.base}/run/{rid2}/in", "x")
        watcher.wait_payload(f"{a.base}/run/{rid2}/out", "x")
        c3.publish(f"{a.base}/run/{rid2}/eof", "")
        watcher.wait_msg(f"{a.base}/run/{rid2}/state", lambda m: m.json()["state"] == "exited")
    finally:
        c3.close()


def test_mqtt_311_last_will(agent):
    a = agent(config={"broker": {"protocol": "3.1.1", "keepalive": "2s"}})
    mark = a.watch.mark()
    a.kill()
    a.watch.wait_payload(f"{a.base}/status", "offline", since=mark, timeout=5 * SLOWDOWN)
    assert [m.payload for m in a.watch.fresh_retained(f"{a.base}/status")] == [b"offline"]


def _password_broker(make_broker, tmp_path, user, password):
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), user, password], check=True,
                   capture_output=True, timeout=20)
    os.chmod(pwfile, 0o644)
    return make_broker(extra=[f"password_file {pwfile}"], anonymous=False)


def test_username_and_password_file(agent, make_broker, tmp_path):
    """§7: broker.username + broker.password_file (relative to the config's folder)."""
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd missing")
    b = _password_broker(make_broker, tmp_path, "lwuser", "s3cret-pw")
    a = agent(broker=b, start=False, config={"broker": {"username": "lwuser",
                                                         "password_file": "secrets/password"}},
              client_auth={"username": "lwuser", "password": "s3cret-pw"})
    os.makedirs(os.path.join(a.dir, "secrets"))
    with open(os.path.join(a.dir, "secrets", "password"), "w") as f:
        f.write("s3cret-pw")
    a.start()
    assert a.client().run("echo").out == [b"hello"]


def test_wrong_password_never_online(agent, make_broker, tmp_path):
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd missing")
    b = _password_broker(make_broker, tmp_path, "lwuser", "s3cret-pw")
    a = agent(broker=b, start=False, config={"broker": {"username": "lwuser",
                                                         "password_file": "password"}},
              client_auth={"username": "lwuser", "password": "s3cret-pw"})
    with open(os.path.join(a.dir, "password"), "w") as f:
        f.write("wrong")
    a.start(wait_online=False)
    a.watch.assert_none(f"{a.base}/status", lambda m: m.payload == b"online",
                        duration=2.0 * SLOWDOWN)
    a.stop()  # whatever it does (retry or exit 1), it must not have come online


def _tls_broker(make_broker, pki, client_cert=False):
    extra = [f"cafile {pki}/ca.crt", f"certfile {pki}/server.crt", f"keyfile {pki}/server.key"]
    if client_cert:
        extra.append("require_certificate true")
    return make_broker(extra=extra)


def test_mqtts_with_ca_file(agent, make_broker, pki):
    """§7: mqtts:// with tls.ca_file (relative to the config's folder)."""
    b = _tls_broker(make_broker, pki)
    assert b.url.startswith("mqtts://")
    a = agent(broker=b, start=False, config={"broker": {"tls": {"ca_file": "ca.crt"}}},
              client_tls={"ca": str(pki / "ca.crt")})
    shutil.copy(pki / "ca.crt", os.path.join(a.dir, "ca.crt"))
    a.start()
    assert a.client().run("echo").out == [b"hello"]


def test_mqtts_with_client_certificate(agent, make_broker, pki):
    """§7: tls.cert_file/key_file: a broker that requires a client certificate."""
    b = _tls_broker(make_broker, pki, client_cert=True)
    a = agent(broker=b, config={"broker": {"tls": {"ca_file": str(pki / "ca.crt"),
                                                   "cert_file": str(pki / "client.crt"),
                                                   "key_file": str(pki / "client.key")}}},
              client_tls={"ca": str(pki / "ca.crt"), "cert": str(pki / "client.crt"),
                          "key": str(pki / "client.key")})
    assert a.client().run("echo").out == [b"hello"]


def test_mqtts_untrusted_server_refused(agent, make_broker, pki, tmp_path):
    """A server certificate from another CA is refused: the agent never comes online."""
    b = _tls_broker(make_broker, pki)
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(other / "k"),
                    "-out", str(other / "ca.crt"), "-days", "2", "-subj", "/CN=other"],
                   check=True, capture_output=True, timeout=30)
    a = agent(broker=b, start=False, config={"broker": {"tls": {"ca_file": str(other / "ca.crt")}}},
              client_tls={"ca": str(pki / "ca.crt")})
    a.start(wait_online=False)
    a.watch.assert_none(f"{a.base}/status", lambda m: m.payload == b"online",
                        duration=2.0 * SLOWDOWN)
    a.stop()


def test_requests_sent_while_away_do_not_run(agent, tmp_path):
    """§6: a clean session by default: a start published while the agent was away is
    not delivered when it comes back."""
    marker = tmp_path / "marker"
    a = agent(commands={"touch": {"exec": ["/usr/bin/touch", str(marker)]}})
    c = a.client()
    assert a.stop() == 0
    c.publish(f"{a.base}/cmd/touch/start", "{}", qos=1)
    a.start()
    time.sleep(QUIET)
    assert not marker.exists(), "a start request sent while the agent was away was run"
    c.run("touch")
    assert marker.exists()


def test_message_expiry_honoured_with_persistent_session(agent, tmp_path):
    """§6: broker.session_expiry opts into a persistent session (requests sent while away
    are delivered); MQTT 5 message expiry on a request is honoured."""
    marks = tmp_path / "marks"
    marks.mkdir()
    a = agent(commands={"touch": {"exec": ["/usr/bin/touch"], "cwd": str(marks),
                                  "args": {"pattern": "[a-z]+", "max": 1}}},
              config={"broker": {"session_expiry": "1h"}})
    c = a.client()
    assert a.stop() == 0
    c.publish(f"{a.base}/cmd/touch/start", {"args": ["expired"]}, expiry=1)
    c.publish(f"{a.base}/cmd/touch/start", {"args": ["kept"]})
    time.sleep(2.2)
    a.start()
    wait_until(lambda: (marks / "kept").exists(), WAIT, "the request queued in the session to run")
    time.sleep(0.3)
    assert not (marks / "expired").exists(), "an expired request was run"


def test_default_qos_is_1(agent):
    """§2: QoS 1 for everything the agent publishes by default (seen by a QoS 2 subscriber,
    which gets the publisher's QoS)."""
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "x\\n"]}})
    c = a.client()
    spy = Client(a.broker.port, a.base, a.prefix, name="spy")
    try:
        spy.subscribe(f"{a.base}/#", qos=2)
        spy.subscribe(f"{a.prefix}/_client/#", qos=2)
        r = c.run("p")
        spy.wait_msg(f"{a.base}/run/{r.id}/state", lambda m: m.json()["state"] == "exited")
        spy.wait_msg(f"{a.prefix}/_client/#")
        seen = spy.snapshot()
        kinds = {m.topic.rsplit("/", 1)[-1] for m in seen}
        assert {"status", "info", "out", "state", "last", "running"} <= kinds, kinds
        for m in seen:
            assert m.qos == 1, m
    finally:
        spy.close()


def test_qos_0_config(agent):
    """§7: `qos: 0` changes the QoS of what the agent publishes."""
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "x\\n"]}}, config={"qos": 0})
    c = a.client()
    r = c.run("p")
    assert r.out == [b"x"]
    assert all(m.qos == 0 for m in r.out_msgs + r.state_msgs), r.out_msgs + r.state_msgs


def test_states_and_status_go_to_different_devices(agent, broker):
    """Two agents on one broker keep to their own topics."""
    a1 = agent()
    a2 = agent()
    c = a1.client()
    c.subscribe(f"{a2.base}/#")
    mark = c.mark()
    r = c.run("echo")
    assert r.out == [b"hello"]
    c.assert_none(f"{a2.base}/run/#", since=mark)
