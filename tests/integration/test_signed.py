"""Signed requests (SPEC §11, issue 10) against a private mosquitto and the real agent:
every check of §11 with its `unauthorized` refusal, refused control messages that never
reach the run, require and per-command rules, the key in run states and the audit log,
the client's --key and keygen, and --check-config on malformed keys. Requests are signed
here with Python's `cryptography` (Debian's python3-cryptography); every wait is bounded."""

import base64
import json
import os
import signal
import stat
import subprocess
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import LINEWIRED, QUIET, SLOWDOWN, WAIT, unique

LINEWIRE = os.environ.get("LINEWIRE", "/work/main/build/cli/linewire")
RUN_LIMIT = 20 * SLOWDOWN

CAT = {"exec": ["/bin/cat"]}
ECHO = {"exec": ["/bin/echo"], "args": {"pattern": ".*", "max": 4}}
SLEEP = {"exec": ["/bin/sleep", "30"], "kill_grace": "500ms"}


def b64(b):
    return base64.b64encode(b).decode()


def openssh(key, comment=""):
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def now_ms():
    return int(time.time() * 1000)


def inner_bytes(fields=None, ts=None, nonce=None):
    inner = dict(fields or {})
    inner["ts"] = now_ms() if ts is None else ts
    inner["nonce"] = nonce or uuid.uuid4().hex
    return json.dumps(inner).encode()


def envelope(key, name, topic, fields=None, ts=None, nonce=None, inner=None, sign_topic=None,
             sign_inner=None):
    """The envelope of SPEC §11. `inner` overrides INNER's bytes; `sign_topic` and
    `sign_inner` what the signature covers (for tampering)."""
    inner = inner if inner is not None else inner_bytes(fields, ts, nonce)
    signed = b"linewire-sig-v1\n" + (sign_topic or topic).encode() + b"\n" + (sign_inner or inner)
    return json.dumps({"signed": b64(inner), "key": name, "sig": b64(key.sign(signed))})


ALICE = Ed25519PrivateKey.generate()
BOB = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()


def auth_config(require=True, skew="10s"):
    return {"auth": {"keys": {"alice": openssh(ALICE, "alice@test"), "bob": openssh(BOB)},
                     "require": require, "max_skew": skew}}


COMMANDS = {
    "cat": CAT,
    "echo": ECHO,
    "sleep": SLEEP,
    "secret": {"exec": ["/bin/echo", "secret"], "keys": ["alice"]},
    "open": {"exec": ["/bin/echo", "open"], "unsigned": True},
}


@pytest.fixture
def signed_agent(agent):
    return agent(COMMANDS, config=auth_config())


def signed_start(c, command, fields=None, key=ALICE, name="alice", **kw):
    topic = c.topic(f"cmd/{command}/start")
    return c.request(topic, envelope(key, name, topic, fields, **kw))


def assert_unauthorized(reply, *words):
    assert reply.get("ok") is False, reply.data
    assert reply.code == "unauthorized", reply.data
    message = reply["error"]["message"]
    for w in words:
        assert w in message, message


def test_signed_start_runs_and_names_its_key(signed_agent):
    c = signed_agent.client()
    rid = unique("r")
    c.subscribe(signed_agent.base + f"/run/{rid}/#")
    reply = signed_start(c, "echo", {"id": rid, "args": ["hi"]})
    assert reply.get("ok") is True, reply.data
    m = c.wait_msg(signed_agent.base + f"/run/{rid}/state",
                   lambda m: m.payload and m.json()["state"] == "exited")
    assert m.json()["key"] == "alice"
    assert m.json()["exit_code"] == 0
    states = [x.json() for x in c.snapshot(signed_agent.base + f"/run/{rid}/state") if x.payload]
    assert all(s.get("key") == "alice" for s in states), states
    log = open(signed_agent.log_path, encoding="utf-8", errors="replace").read()
    assert f"run={rid}" in log and "key=alice" in log


def test_each_check_refuses_with_unauthorized(signed_agent):
    c = signed_agent.client()
    topic = c.topic("cmd/echo/start")
    other = c.topic("cmd/cat/start")
    cases = [
        (envelope(MALLORY, "mallory", topic), ["unknown key", "mallory"]),
        # tampered INNER: signed one thing, carries another
        (envelope(ALICE, "alice", topic, inner=inner_bytes({"args": ["x"]}),
                  sign_inner=inner_bytes({"args": ["y"]})), ["bad signature"]),
        # signed for another topic
        (envelope(ALICE, "alice", topic, sign_topic=other), ["bad signature"]),
        # another key under a trusted name
        (envelope(MALLORY, "alice", topic), ["bad signature", "alice"]),
        (envelope(ALICE, "alice", topic, ts=now_ms() - 60_000), ["stale timestamp", "behind"]),
        (envelope(ALICE, "alice", topic, ts=now_ms() + 60_000), ["stale timestamp", "ahead"]),
        (json.dumps({"id": "x1"}), ["unsigned request", "auth.require"]),
    ]
    for payload, words in cases:
        assert_unauthorized(c.request(topic, payload), *words)

    # A replay: the same envelope twice.
    once = envelope(ALICE, "alice", topic, {"args": ["again"]})
    assert c.request(topic, once).get("ok") is True
    assert_unauthorized(c.request(topic, once), "replayed nonce")

    # The command's keys: bob is trusted, but not for `secret`; alice is.
    assert_unauthorized(signed_start(c, "secret", key=BOB, name="bob"), "bob", "keys of command")
    assert signed_start(c, "secret").get("ok") is True
    assert_unauthorized(c.request(c.topic("cmd/secret/start"), b""), "unsigned request", "secret")


def test_malformed_envelopes_are_bad_requests(signed_agent):
    c = signed_agent.client()
    topic = c.topic("cmd/echo/start")
    good = json.loads(envelope(ALICE, "alice", topic))
    cases = [
        ({**good, "extra": "x"}, "unknown field 'extra'"),
        ({**good, "key": 7}, "must be a string"),
        ({**good, "signed": "not base64!"}, "base64"),
        ({**good, "sig": b64(b"short")}, "64 bytes"),
        ({"signed": good["signed"], "sig": good["sig"]}, "no 'key'"),
    ]
    for doc, words in cases:
        r = c.request(topic, json.dumps(doc))
        assert r.code == "bad_request", r.data
        assert words in r["error"]["message"], r.data
    # INNER without a nonce, properly signed: the signer sent garbage.
    inner = json.dumps({"ts": now_ms()}).encode()
    r = c.request(topic, envelope(ALICE, "alice", topic, inner=inner))
    assert r.code == "bad_request" and "nonce" in r["error"]["message"], r.data
    # An oversize payload is refused by size before anything is parsed.
    big = envelope(ALICE, "alice", topic, {"stdin": "x" * 70000})
    r = c.request(topic, big)
    assert r.code == "bad_request" and "bytes is over" in r["error"]["message"], r.data


def test_refused_control_messages_never_reach_the_run(signed_agent):
    a = signed_agent
    c = a.client()
    rid = unique("r")
    c.subscribe(a.base + f"/run/{rid}/#")
    assert signed_start(c, "cat", {"id": rid}).get("ok") is True
    c.wait_msg(a.base + f"/run/{rid}/state", lambda m: m.payload and m.json()["state"] == "running")
    base = a.base + f"/run/{rid}"
    since = c.mark()
    # Unsigned (require is on): refused on errors, since no reply destination was given.
    c.publish(base + "/in", b"unsigned line")
    assert c.wait_error(base + "/in", since)["error"]["code"] == "unauthorized"
    c.publish(base + "/signal", b"KILL")
    assert c.wait_error(base + "/signal", since)["error"]["code"] == "unauthorized"
    c.publish(base + "/eof", b"")
    assert c.wait_error(base + "/eof", since)["error"]["code"] == "unauthorized"
    c.publish(a.base + "/cmd/cat/stop", b"")
    assert c.wait_error(a.base + "/cmd/cat/stop", since)["error"]["code"] == "unauthorized"
    # Signed but wrong: another key under alice's name, and a replay.
    assert_unauthorized(c.request(base + "/signal",
                                  envelope(MALLORY, "alice", base + "/signal", {"signal": "KILL"})),
                        "bad signature")
    line = envelope(ALICE, "alice", base + "/in", {"line": "signed line"})
    assert c.request(base + "/in", line).get("ok") is True
    assert_unauthorized(c.request(base + "/in", line), "replayed nonce")
    stop = a.base + "/cmd/cat/stop"
    assert_unauthorized(c.request(stop, envelope(ALICE, "alice", stop, sign_topic=base + "/eof")),
                        "bad signature")
    c.assert_none(base + "/state", lambda m: m.payload and m.json()["state"] != "running",
                  since=since, duration=QUIET, what="the run ending after refused requests")
    # Only the signed line reached cat; a signed eof ends it.
    assert c.request(base + "/eof", envelope(ALICE, "alice", base + "/eof")).get("ok") is True
    final = c.wait_msg(base + "/state", lambda m: m.payload and m.json()["state"] == "exited")
    assert final.json()["lines"] == 1
    assert [m.payload for m in c.snapshot(base + "/out")] == [b"signed line"]


def test_require_with_unsigned_commands(signed_agent):
    c = signed_agent.client()
    assert c.start("open").get("ok") is True  # unsigned: true
    assert_unauthorized(c.start("echo"), "unsigned request")
    # A stranger learns no command names: unsigned to an unknown command is unauthorized...
    assert_unauthorized(c.start("nosuch"), "unsigned request")
    # ... while a trusted signer learns that it does not exist.
    assert signed_start(c, "nosuch").code == "unknown_command"
    # A signed request to an unsigned command is still checked.
    assert_unauthorized(signed_start(c, "open", key=MALLORY), "bad signature")


def test_without_require_unsigned_runs_and_signed_is_still_checked(agent):
    a = agent(COMMANDS, config=auth_config(require=False))
    c = a.client()
    assert c.start("echo").get("ok") is True
    assert_unauthorized(c.start("secret"), "unsigned request", "secret")
    assert_unauthorized(signed_start(c, "echo", key=MALLORY, name="mallory"), "unknown key")
    assert signed_start(c, "echo").get("ok") is True


def test_switch_and_stop_signed(signed_agent):
    a = signed_agent
    c = a.client()
    running = a.base + "/cmd/sleep/running"
    c.subscribe(running)
    sw = a.base + "/cmd/sleep/switch"
    assert c.request(sw, envelope(ALICE, "alice", sw, {"state": "ON"})).get("ok") is True
    c.wait_msg(running, lambda m: m.payload == b"ON")
    r = c.request(sw, envelope(ALICE, "alice", sw, {"state": "MAYBE"}))
    assert r.code == "bad_request" and "ON or OFF" in r["error"]["message"]
    since = c.mark()
    stop = a.base + "/cmd/sleep/stop"
    assert c.request(stop, envelope(ALICE, "alice", stop)).get("ok") is True
    c.wait_msg(running, lambda m: m.payload == b"OFF", since=since)


def test_mqtt311_refusal_goes_to_reply_to_inside_inner(signed_agent):
    a = signed_agent
    c = a.client(protocol=4)
    reply_to = f"{a.prefix}/_client/{c.id}/reply"
    c.subscribe(reply_to)
    topic = a.base + "/cmd/echo/start"
    since = c.mark()
    c.publish(topic, envelope(MALLORY, "alice", topic, {"reply_to": reply_to, "correlation": "k1"}))
    m = c.wait_msg(reply_to, since=since)
    assert m.json()["error"]["code"] == "unauthorized"
    assert m.json()["correlation"] == "k1"


# ----------------------------------------------------------------- the client


def lw(a, *args, stdin=b"", env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LINEWIRE")}
    full.update(env or {})
    return subprocess.run([LINEWIRE, "--broker", a.broker.url, "--prefix", a.prefix, *args],
                          input=stdin, capture_output=True, timeout=RUN_LIMIT, env=full)


def keygen(tmp_path, name="alice"):
    path = str(tmp_path / f"{name}.pem")
    r = subprocess.run([LINEWIRE, "keygen", path], capture_output=True, timeout=RUN_LIMIT)
    assert r.returncode == 0, r.stderr
    return path, r


def test_keygen_writes_pkcs8_and_an_openssh_line(tmp_path):
    path, r = keygen(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pem = open(path, "rb").read()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(pem, password=None)
    pub = open(path + ".pub").read()
    assert pub.endswith(" alice\n") and pub.count("\n") == 1
    assert pub.strip() == openssh(key, "alice")
    assert r.stdout.decode() == pub
    # Never overwrites.
    again = subprocess.run([LINEWIRE, "keygen", path], capture_output=True, timeout=RUN_LIMIT)
    assert again.returncode == 255 and b"never overwritten" in again.stderr
    assert open(path, "rb").read() == pem


def test_client_key_signs_run_stdin_eof_and_kill(agent, tmp_path):
    path, _ = keygen(tmp_path)
    a = agent(COMMANDS, config={"auth": {"keys": {"alice": {"file": path + ".pub"}},
                                         "require": True}})
    r = lw(a, "--key", path, "run", a.device, "cat", stdin=b"one\ntwo\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"one\ntwo\n"
    log = open(a.log_path, encoding="utf-8", errors="replace").read()
    for kind in ("start", "in", "eof"):
        assert any(f"request {kind} " in ln and "key=alice" in ln for ln in log.splitlines()), kind
    # LINEWIRE_KEY and --key-name; unsigned is refused with the reason.
    r = lw(a, "run", a.device, "echo", "x", env={"LINEWIRE_KEY": path})
    assert r.returncode == 0 and r.stdout == b"x\n", r.stderr
    r = lw(a, "--key", path, "--key-name", "bob", "run", a.device, "echo", "x")
    assert r.returncode == 255 and b"unknown key 'bob'" in r.stderr, r.stderr
    r = lw(a, "run", a.device, "echo", "x")
    assert r.returncode == 255 and b"unauthorized" in r.stderr, r.stderr
    # kill: a signed signal.
    c = a.client()
    rid = unique("r")
    c.subscribe(a.base + f"/run/{rid}/#")
    topic = c.topic("cmd/sleep/start")
    key = serialization.load_pem_private_key(open(path, "rb").read(), password=None)
    assert c.request(topic, envelope(key, "alice", topic, {"id": rid})).get("ok") is True
    c.wait_msg(a.base + f"/run/{rid}/state", lambda m: m.payload and m.json()["state"] == "running")
    r = lw(a, "--key", path, "kill", a.device, rid, "KILL")
    assert r.returncode == 0, r.stderr
    final = c.wait_msg(a.base + f"/run/{rid}/state",
                       lambda m: m.payload and m.json()["state"] == "killed")
    assert final.json()["signal"] == "KILL" and final.json()["key"] == "alice"


def test_client_refuses_a_key_others_can_read(agent, tmp_path):
    path, _ = keygen(tmp_path)
    os.chmod(path, 0o644)
    a = agent({"echo": ECHO})
    r = lw(a, "--key", path, "run", a.device, "echo", "x")
    assert r.returncode == 255 and b"too open" in r.stderr


# ----------------------------------------------------------------- the config


def check_config(tmp_path, auth_yaml):
    path = tmp_path / "linewire.yaml"
    path.write_text("commands:\n  e: {exec: [/bin/echo]}\n" + auth_yaml)
    return subprocess.run([LINEWIRED, "--config", str(path), "--check-config"],
                          capture_output=True, timeout=RUN_LIMIT)


def test_check_config_refuses_malformed_keys_with_line_and_column(tmp_path):
    r = check_config(tmp_path, "auth:\n  keys:\n    a: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n")
    assert r.returncode == 2
    assert b":5:8: auth.keys.a:" in r.stderr and b"32-byte" in r.stderr, r.stderr
    r = check_config(tmp_path, "auth:\n  keys:\n    a: {file: nosuch.pub}\n")
    assert r.returncode == 2
    assert b":5:15: auth.keys.a.file:" in r.stderr and b"cannot read" in r.stderr, r.stderr
    (tmp_path / "rsa.pub").write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x\n")
    r = check_config(tmp_path, "auth:\n  keys:\n    a: {file: rsa.pub}\n")
    assert r.returncode == 2 and b"only ssh-ed25519" in r.stderr, r.stderr
    # A PEM public key file and an OpenSSH line file are both fine.
    pem = ALICE.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "a.pem").write_bytes(pem)
    (tmp_path / "b.pub").write_text(openssh(BOB, "bob") + "\n")
    r = check_config(tmp_path, "auth:\n  keys:\n    a: {file: a.pem}\n    b: {file: b.pub}\n")
    assert r.returncode == 0, r.stderr


def test_client_signs_ctrl_c_and_fan_out(agent, tmp_path):
    path, _ = keygen(tmp_path)
    group = unique("g")
    loop = tmp_path / "loop.sh"
    loop.write_text("#!/bin/sh\necho ready\nwhile :; do sleep 0.05; done\n")
    loop.chmod(0o755)
    auth = {"auth": {"keys": {"alice": {"file": path + ".pub"}}, "require": True},
            "groups": [group]}
    a = agent({"loop": {"exec": [str(loop)]}, "echo": ECHO}, config=auth)
    # Ctrl-C: the client sends a signed INT; the run is killed by it.
    proc = subprocess.Popen([LINEWIRE, "--broker", a.broker.url, "--prefix", a.prefix, "--key",
                             path, "run", a.device, "loop"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=RUN_LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    log = open(a.log_path, encoding="utf-8", errors="replace").read()
    assert any("request signal " in ln and "payload=INT" in ln and "key=alice" in ln
               for ln in log.splitlines()), log[-3000:]
    # Fan-out: the group start is signed for the group topic.
    r = lw(a, "--key", path, "run", "--group", group, "echo", "fan")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{a.device}: fan\n".encode()
    r = lw(a, "run", "--group", group, "echo", "fan")
    assert r.returncode == 255 and b"unauthorized" in r.stderr, r.stderr


def test_replay_follows_the_commands_signature_rules(signed_agent):
    """SPEC §12: a replay is checked as §3 says, signature included: the kept output of a
    command that needs a key is not for anyone who asks."""
    c = signed_agent.client()
    rid = unique("r")
    c.subscribe(signed_agent.base + f"/run/{rid}/#")
    assert signed_start(c, "secret", {"id": rid}).get("ok") is True
    c.wait_msg(signed_agent.base + f"/run/{rid}/state",
               lambda m: m.payload and m.json()["state"] == "exited")
    topic = c.topic(f"run/{rid}/replay")
    assert_unauthorized(c.request(topic, b""))
    assert_unauthorized(c.request(topic, envelope(BOB, "bob", topic, {})), "bob")
    rt = f"{c.reply_topic_base}/{unique('rp')}"
    mark = c.mark()
    c.publish(topic, envelope(ALICE, "alice", topic, {"from": 1}), response_topic=rt,
              correlation=b"x")
    summary = c.wait_msg(rt, since=mark).json()
    assert summary["ok"] is True and summary["out"] == {"first": 1, "last": 1}, summary
    assert [m.payload for m in c.snapshot(f"{rt}/out", mark)] == [b"secret"]
