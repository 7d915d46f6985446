"""websocketd drop-in mode (SPEC §8), differential: the same program behind Debian's
websocketd 0.4.1 and behind `linewired --port=N PROGRAM` must look the same to a
client, except where SPEC asks for better: linewired closes with 1000 when the program
exits (websocketd drops the TCP connection) and delivers a final line without a newline
(websocketd drops it)."""

import os
import shutil

import pytest

from harness import LINEWIRED, script, wait_until, pid_alive
from wsclient import Server, connect, handshake_status, read_lines, read_until_closed

WEBSOCKETD = shutil.which("websocketd") or "/usr/bin/websocketd"

pytestmark = pytest.mark.skipif(not os.path.exists(WEBSOCKETD),
                                reason="websocketd (Debian package) is not installed")

# Variables websocketd documents for its programs (libwebsocketd/env.go), compared by name.
CGI = {"SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT",
       "SERVER_PROTOCOL", "GATEWAY_INTERFACE", "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO",
       "PATH_TRANSLATED", "QUERY_STRING", "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE",
       "REMOTE_IDENT", "REMOTE_USER", "UNIQUE_ID", "REQUEST_URI", "HTTPS"}
# Equal values expected (the others differ per connection or per server by nature).
SAME_VALUE = {"REMOTE_ADDR", "SERVER_NAME", "SERVER_PROTOCOL", "GATEWAY_INTERFACE",
              "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "AUTH_TYPE",
              "CONTENT_LENGTH", "CONTENT_TYPE", "REMOTE_IDENT", "REMOTE_USER"}


@pytest.fixture
def servers(tmp_path):
    """servers(flags, program) → (websocketd, linewired), both stopped at teardown."""
    started = []

    def factory(flags, program):
        pair = (Server([WEBSOCKETD], flags, program, tmp_path, "websocketd"),
                Server([LINEWIRED], flags, program, tmp_path, "linewired"))
        started.extend(pair)
        return pair

    yield factory
    for s in started:
        code = s.stop()
        if s.proc.args[0] == LINEWIRED:
            assert code == 0, f"linewired exited {code}:\n{s.log()}"


def test_counter_frames_equal_and_close_1000(servers, tmp_path):
    count = script(tmp_path, "count.sh", """
i=1
while [ $i -le 20 ]; do echo "$i"; i=$((i+1)); done
printf 'tail-without-newline'
""")
    theirs, ours = servers([], [count])
    their_lines, their_close = read_until_closed(connect(theirs.url("/count")))
    our_lines, our_close = read_until_closed(connect(ours.url("/count")))
    assert their_lines == [str(i) for i in range(1, 21)]
    # Better than websocketd: the unterminated last line arrives, and a close frame 1000.
    assert our_lines == their_lines + ["tail-without-newline"]
    assert our_close.code == 1000
    assert their_close.code is None


def test_echo_equal(servers, tmp_path):
    echo = script(tmp_path, "echo.sh", """
while IFS= read -r line; do echo "got:$line"; done
""")
    theirs, ours = servers([], [echo])
    results = []
    for server in (theirs, ours):
        ws = connect(server.url("/echo"))
        got = []
        for word in ["one", "two words", "ünïcode", ""]:
            ws.send(word)
            got += read_lines(ws, 1)
        ws.close()
        results.append(got)
    assert results[0] == results[1] == ["got:one", "got:two words", "got:ünïcode", "got:"]


def test_cgi_variables(servers, tmp_path):
    dump = script(tmp_path, "env.sh", """
env | LC_ALL=C sort
""")
    theirs, ours = servers([], [dump])
    envs = []
    for server in (theirs, ours):
        ws = connect(server.url("/some/path?x=1&y=%20z"), header=["X-Custom-Thing: yes"],
                     origin="http://example.test")
        lines, _ = read_until_closed(ws)
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        envs.append({k: v for k, v in env.items() if k in CGI or k.startswith("HTTP_")})
    theirs_env, ours_env = envs
    assert set(ours_env) == set(theirs_env), (set(ours_env) ^ set(theirs_env))
    differ = [(n, ours_env[n], theirs_env[n]) for n in sorted(theirs_env)
              if (n in SAME_VALUE or n.startswith("HTTP_")) and n != "HTTP_SEC_WEBSOCKET_KEY"
              and ours_env[n] != theirs_env[n]]
    assert not differ
    assert ours_env["SERVER_PORT"] == str(ours.port)
    assert ours_env["PATH_INFO"] == "/some/path"
    assert ours_env["QUERY_STRING"] == "x=1&y=%20z"
    assert ours_env["HTTP_X_CUSTOM_THING"] == "yes"


def test_maxforks_429(servers, tmp_path):
    hold = script(tmp_path, "hold.sh", """
echo ready
exec sleep 60
""")
    for server in servers(["--maxforks=1"], [hold]):
        first = connect(server.url("/"))
        assert read_lines(first, 1) == ["ready"]
        assert handshake_status(server.url("/")) == 429, server.proc.args[0]
        first.close()


def test_bad_origin_403(servers, tmp_path):
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    for server in servers(["--origin=good.example:8000"], [hello]):
        assert handshake_status(server.url("/"), origin="http://evil.example:8000") == 403
        assert handshake_status(server.url("/"), origin="http://good.example:8000") == 101


def test_client_leaving_kills_the_process(servers, tmp_path):
    pidfile = tmp_path / "pid"
    sleeper = script(tmp_path, "sleeper.sh", f"""
echo $$ > {pidfile}
echo started
exec sleep 60
""")
    _, ours = servers([], [sleeper])
    ws = connect(ours.url("/"))
    assert read_lines(ws, 1) == ["started"]
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    ws.close()
    wait_until(lambda: not pid_alive(pid), what="the program to be killed after the client left")
    assert "disconnect" in ours.log()


def test_bad_flags_exit_2(tmp_path):
    import subprocess
    r = subprocess.run([LINEWIRED, "--port=8080", "--nosuchflag", "/bin/cat"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "nosuchflag" in r.stderr
    r = subprocess.run([LINEWIRED, "--port=8080"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "PROGRAM" in r.stderr
