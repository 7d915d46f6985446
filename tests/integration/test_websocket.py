"""The local WebSocket listener in config mode (SPEC §8): runs over WebSocket, viewers
of any run, the limits and refusals, /healthz, /metrics and static files."""

import json
import os
import ssl
import subprocess
import shutil
import time

import pytest

from harness import QUIET, WAIT, free_port, pid_alive, script, unique, wait_until
from wsclient import (connect, handshake_status, http_get, read_lines, read_until_closed,
                      upgrade_answer)


def ws_agent(agent, tmp_path, commands, config=None, **websocket):
    port = free_port()
    section = {"listen": f"127.0.0.1:{port}"}
    section.update(websocket)
    a = agent(commands, config={"websocket": section, **(config or {})})
    a.ws_port = port
    a.ws = lambda path: f"ws://127.0.0.1:{port}{path}"
    return a


@pytest.fixture
def greet(tmp_path):
    return script(tmp_path, "greet.sh", """
echo "run:$LINEWIRE_RUN"
echo "args:$*"
echo "transport:$LINEWIRE_TRANSPORT remote:$REMOTE_ADDR query:$QUERY_STRING"
while IFS= read -r line; do
  [ "$line" = "bye" ] && break
  echo "echo:$line"
done
printf 'no newline at the end'
""")


def test_run_over_websocket(agent, tmp_path, greet):
    a = ws_agent(agent, tmp_path, {
        "greet": {"exec": [greet], "args": {"pattern": "[0-9]+", "max": 3},
                  "transports": ["mqtt", "websocket"]}})
    ws = connect(a.ws("/greet?arg=5&arg=17"))
    first = read_lines(ws, 3)
    rid = first[0].split(":", 1)[1]
    assert first[1:] == ["args:5 17",
                         "transport:websocket remote:127.0.0.1 query:arg=5&arg=17"]
    ws.send("hello there")
    assert read_lines(ws, 1) == ["echo:hello there"]
    ws.send("bye")
    lines, closed = read_until_closed(ws)
    assert lines == ["no newline at the end"]
    assert closed.code == 1000
    # The same run, seen over MQTT: started by the websocket transport, exited 0.
    c = a.client()
    c.subscribe(f"{a.base}/run/{rid}/state")
    m = c.wait_msg(f"{a.base}/run/{rid}/state", lambda m: m.json().get("state") == "exited")
    assert m.json()["transport"] == "websocket" and m.json()["exit_code"] == 0
    assert m.json()["args"] == ["5", "17"]


def test_refusals(agent, tmp_path, greet):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    hold = script(tmp_path, "hold.sh", "echo ready\nexec sleep 60\n")
    a = ws_agent(agent, tmp_path, {
        "greet": {"exec": [greet], "args": {"pattern": "[0-9]+", "max": 1},
                  "transports": ["websocket"]},
        "plain": {"exec": [greet], "transports": ["websocket"]},
        "hold": {"exec": [hold], "transports": ["websocket"]},
        "mqttonly": {"exec": [greet]},
    }, token_file=str(token_file), allowed_origins=["http://good.example:8000"], max_connections=2)
    auth = ["Authorization: Bearer s3cret-token"]
    good = "http://good.example:8000"

    def status(path, **kw):
        kw.setdefault("header", auth)
        kw.setdefault("origin", good)
        return handshake_status(a.ws(path), **kw)

    assert status("/greet") == 101
    assert status("/greet?token=s3cret-token", header=[]) == 101
    assert status("/greet", header=[]) == 401
    assert status("/greet?token=wrong", header=[]) == 401
    assert status("/greet", header=["Authorization: Bearer wrong"]) == 401
    assert status("/nosuch") == 404
    assert status("/mqttonly") == 404
    assert status("/run/nosuchrun") == 404
    assert status("/a/b/c") == 404
    assert status("/greet?arg=x") == 400
    assert status("/greet?arg=1&arg=2") == 400
    assert status("/plain?arg=1") == 400
    assert status("/greet", origin="http://evil.example") == 403
    assert status("/greet", origin="http://good.example:8001") == 403
    assert status("/greet", suppress_origin=True) == 101  # not a browser: no origin to check
    # max_connections counts open WebSockets.
    held = [connect(a.ws("/hold"), header=auth, origin=good) for _ in range(2)]
    for h in held:
        assert read_lines(h, 1) == ["ready"]
    assert status("/hold") == 429
    for h in held:
        h.close()
    wait_until(lambda: status("/greet") == 101, what="a slot after the held connections left")


def _auth(require):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return {"auth": {"keys": {"alice": public}, "require": require}}


def test_commands_that_need_a_signature_are_refused(agent, tmp_path, greet):
    """Signed requests (SPEC §11) are MQTT payloads; a URL cannot carry one. So a command
    with `keys`, and under auth.require every command not marked `unsigned: true`, is
    refused over WebSocket with 403 and never started; under auth.require an unknown name
    gets the same 403 (no name revealed). Before, a WebSocket start skipped the check."""
    ws = ["mqtt", "websocket"]
    commands = {"secret": {"exec": [greet], "keys": ["alice"], "transports": ws},
                "plain": {"exec": [greet], "transports": ws},
                "open": {"exec": [greet], "unsigned": True, "transports": ws}}
    strict = ws_agent(agent, tmp_path, commands, config=_auth(require=True))
    lax = ws_agent(agent, tmp_path, commands, config=_auth(require=False))

    def answer(a, name):
        status, _, body = upgrade_answer(a.ws_port, f"/{name}")
        return status, body.decode()

    for a, name in [(strict, "secret"), (strict, "plain"), (strict, "nosuch"), (lax, "secret")]:
        status, body = answer(a, name)
        assert status == 403, (name, status, body)
        assert f"'{name}' needs a signed request" in body and "over MQTT" in body
    assert answer(lax, "nosuch")[0] == 404
    for a, name in [(strict, "open"), (lax, "open"), (lax, "plain")]:
        w = connect(a.ws(f"/{name}"))
        assert read_lines(w, 1)[0].startswith("run:"), name
        w.close()
    # Refused means never started; and the listener said so when it started.
    for a, refused in [(strict, ["secret", "plain"]), (lax, ["secret"])]:
        log = a.log_text()
        for name in refused:
            assert f"command '{name}' needs signed requests" in log
            assert f"started '{name}'" not in log
    assert "started 'open'" in strict.log_text()


def test_client_leaving_kills_the_run(agent, tmp_path):
    pidfile = tmp_path / "pid"
    sleeper = script(tmp_path, "sleeper.sh", f"""
echo $$ > {pidfile}
echo "run:$LINEWIRE_RUN"
exec sleep 60
""")
    a = ws_agent(agent, tmp_path, {"sleeper": {"exec": [sleeper], "transports": ["websocket"]}})
    ws = connect(a.ws("/sleeper"))
    rid = read_lines(ws, 1)[0].split(":", 1)[1]
    pid = int(pidfile.read_text())
    ws.close()
    c = a.client()
    c.subscribe(f"{a.base}/run/{rid}/state")
    m = c.wait_msg(f"{a.base}/run/{rid}/state", lambda m: m.json().get("state") == "killed")
    assert m.json()["reason"] == "disconnect"
    assert not pid_alive(pid)


def test_viewers_of_an_mqtt_run(agent, tmp_path):
    echo = script(tmp_path, "echo.sh", 'while IFS= read -r l; do echo "$l"; done\n')
    a = ws_agent(agent, tmp_path, {"echo": {"exec": [echo]}})
    c = a.client()
    run = c.run("echo", wait=False)
    run.wait_state("running")
    viewers = [connect(a.ws(f"/run/{run.id}")) for _ in range(3)]
    # Give the handshakes a line to prove they are attached before the real ones.
    run.send_in("warm-up")
    for v in viewers:
        assert read_lines(v, 1) == ["warm-up"]
    viewers[2].close()  # a viewer leaving does not end the run
    for word in ["one", "two", "three"]:
        run.send_in(word)
    for v in viewers[:2]:
        assert read_lines(v, 3) == ["one", "two", "three"]
    run.eof()
    for v in viewers[:2]:
        lines, closed = read_until_closed(v)
        assert lines == [] and closed.code == 1000
    assert run.wait_final()["state"] == "exited"


def test_slow_viewer_is_dropped_and_stalls_nothing(agent, tmp_path):
    flood = script(tmp_path, "flood.sh", """
read go
yes "$(head -c 4000 /dev/zero | tr '\\0' x)" | head -n 10000
echo done
""")
    a = ws_agent(agent, tmp_path, {"flood": {"exec": [flood], "transports": ["websocket"]}})
    primary = connect(a.ws("/flood"))
    # The run's id is in its environment only: find it through /healthz-free means, the log.
    rid = wait_until(lambda: _run_id_from_log(a, "flood"), what="the run id in the log")
    sleepy = connect(a.ws(f"/run/{rid}"))  # never reads until the end
    primary.send("go")
    # The run goes at its primary's pace, 40 MB, whatever the sleepy viewer does.
    lines, closed = read_until_closed(primary, timeout=6 * WAIT, limit=50000)
    assert len(lines) == 10001 and lines[-1] == "done" and closed.code == 1000
    slow_lines, slow_closed = read_until_closed(sleepy, timeout=6 * WAIT, limit=50000)
    assert len(slow_lines) < 10001
    assert slow_closed.code in (1008, None)


def _run_id_from_log(a, command):
    for line in a.log_text().splitlines():
        if f"started '{command}'" in line:
            return line.split("run ", 1)[1].split(":", 1)[0]
    return None


def test_primary_backpressure_blocks_the_child(agent, tmp_path):
    marker = tmp_path / "finished"
    flood = script(tmp_path, "flood.sh", f"""
yes "$(head -c 4000 /dev/zero | tr '\\0' y)" | head -n 8000
touch {marker}
""")
    a = ws_agent(agent, tmp_path, {"flood": {"exec": [flood], "transports": ["websocket"]}})
    ws = connect(a.ws("/flood"))
    assert len(read_lines(ws, 1)) == 1
    # 32 MB of output against a client that reads nothing: the child must be held.
    time.sleep(3 * QUIET)
    assert not marker.exists()
    lines, closed = read_until_closed(ws, timeout=6 * WAIT, limit=40000)
    assert len(lines) == 7999 and closed.code == 1000  # nothing dropped
    assert marker.exists()


def test_healthz_and_metrics(agent, tmp_path, greet):
    a = ws_agent(agent, tmp_path, {"greet": {"exec": [greet], "transports": ["mqtt", "websocket"]}})
    ws = connect(a.ws("/greet"))
    read_lines(ws, 3)
    status, headers, body = http_get(a.ws_port, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["broker_connected"] is True and doc["runs"] == 1
    ws.send("bye")
    read_until_closed(ws)
    status, headers, body = http_get(a.ws_port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'linewire_runs_started_total{command="greet"} 1' in text
    assert 'linewire_lines_published_total{command="greet"} 4' in text
    assert "# TYPE linewire_runs_active gauge" in text
    assert "linewire_broker_reconnects_total 0" in text
    assert http_get(a.ws_port, "/healthz", method="POST")[0] == 405


def test_static_files(agent, tmp_path, greet):
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("<p>index</p>")
    (www / "app.js").write_text("console.log(1)")
    (www / "style.css").write_text("p{}")
    (www / "sub" / "index.html").write_text("sub index")
    (tmp_path / "secret.txt").write_text("SECRET")
    os.symlink(tmp_path / "secret.txt", www / "link-out.txt")
    os.symlink(www / "app.js", www / "link-in.js")
    a = ws_agent(agent, tmp_path, {"greet": {"exec": [greet], "transports": ["websocket"]}},
                 static_dir=str(www))
    p = a.ws_port
    s, h, b = http_get(p, "/")
    assert (s, h["content-type"], b) == (200, "text/html; charset=utf-8", b"<p>index</p>")
    s, h, b = http_get(p, "/app.js")
    assert (s, h["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert http_get(p, "/style.css")[1]["content-type"] == "text/css; charset=utf-8"
    assert http_get(p, "/sub/")[2] == b"sub index"
    assert http_get(p, "/link-in.js")[0] == 200
    s, h, b = http_get(p, "/app.js", method="HEAD")
    assert s == 200 and b == b"" and h["content-length"] == "14"
    for bad in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/%2E%2E/%2e%2e/secret.txt",
                "/..%2fsecret.txt", "/link-out.txt", "/nosuch.html", "/sub/..%5c..%5csecret.txt",
                "/%00", "//etc/passwd"]:
        s, _, b = http_get(p, bad)
        assert s in (400, 404), bad
        assert b"SECRET" not in b and b"root:" not in b, bad


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl command not installed")
def test_tls_listener(agent, tmp_path, greet):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    a = ws_agent(agent, tmp_path, {"greet": {"exec": [greet], "transports": ["websocket"]}},
                 cert_file=str(cert), key_file=str(key))
    ws = connect(f"wss://127.0.0.1:{a.ws_port}/greet?x=1", origin=f"https://127.0.0.1:{a.ws_port}",
                 sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(cert),
                         "check_hostname": False})
    assert read_lines(ws, 3)[2].endswith("query:x=1")
    ws.send("bye")
    assert read_until_closed(ws)[1].code == 1000
