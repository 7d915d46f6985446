"""websocketd drop-in mode, every flag of websocketd 0.4.1 beyond the basic ones (issue
21), differential: the same command line behind Debian's websocketd and behind
`linewired`, compared, except where linewired does better on purpose (each such place
says so, and the README's "Coming from websocketd" table lists it)."""

import os
import re
import subprocess

import pytest

from harness import LINEWIRED, WAIT, free_port, port_open, script, wait_until
from websocketd_pair import WEBSOCKETD, exchange, needs_websocketd, servers, upgrade  # noqa: F401
from wsclient import connect, read_lines, read_until_closed

pytestmark = needs_websocketd

ENV_DUMP = "env | LC_ALL=C sort\n"


def frames(ws, timeout=WAIT):
    """Every message until the server ends the connection: [(opcode, bytes)]."""
    import websocket
    out = []
    ws.settimeout(timeout)
    while True:
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionResetError):
            return out
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return out
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            out.append((opcode, frame.data))


def env_of(url):
    lines, _ = read_until_closed(connect(url))
    return dict(line.split("=", 1) for line in lines if "=" in line)


# ---- --dir ----

def scripts_dir(tmp_path):
    d = tmp_path / "scripts"
    (d / "sub").mkdir(parents=True)
    script(d, "env.sh", ENV_DUMP)
    script(d / "sub", "inner.sh", ENV_DUMP)
    (d / "plain.txt").write_text("not a program\n")
    return d


def test_dir_runs_the_program_the_path_names(servers, tmp_path):
    d = scripts_dir(tmp_path)
    theirs, ours = servers([f"--dir={d}"])
    for path in ["/env.sh?x=1", "/sub/inner.sh/extra/pa%20th?q=2"]:
        their_env, our_env = env_of(theirs.url(path)), env_of(ours.url(path))
        for name in ["SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REQUEST_URI",
                     "REQUEST_METHOD", "REMOTE_ADDR", "SERVER_NAME", "GATEWAY_INTERFACE"]:
            assert our_env.get(name) == their_env.get(name), (path, name)
    assert our_env["SCRIPT_NAME"] == "/sub/inner.sh" and our_env["PATH_INFO"] == "/extra/pa th"
    # Ours ends with a close frame, as in single-program mode.
    _, closed = read_until_closed(connect(ours.url("/env.sh")))
    assert closed.code == 1000


def test_dir_refusals(servers, tmp_path):
    d = scripts_dir(tmp_path)
    os.symlink("/bin/echo", d / "escape")  # a symlink out of the folder
    theirs, ours = servers([f"--dir={d}"])
    for path in ["/nosuch", "/sub", "/", "/sub/nosuch.sh"]:
        assert upgrade(theirs.port, path).status == 404, path
        assert upgrade(ours.port, path).status == 404, path
    # `..`: websocketd redirects to the cleaned path (301), which no WebSocket client
    # follows; linewired answers 404 and never resolves it.
    for path in ["/sub/../env.sh", "/sub/%2e%2e/env.sh"]:
        assert upgrade(theirs.port, path).status == 301, path
        assert upgrade(ours.port, path).status == 404, path
    # Better than websocketd: it runs a symlink that leads out of the folder, and it
    # upgrades a file it cannot execute, then drops the connection without a word.
    assert upgrade(theirs.port, "/escape").status == 101
    assert upgrade(ours.port, "/escape").status == 404
    assert upgrade(theirs.port, "/plain.txt").status == 101
    refused = upgrade(ours.port, "/plain.txt")
    assert refused.status == 403 and b"not executable" in refused.body


def test_dir_and_program_together_are_refused(tmp_path):
    for binary in (WEBSOCKETD, LINEWIRED):
        r = subprocess.run([binary, "--port=1", f"--dir={tmp_path}", "/bin/cat"],
                           capture_output=True, text=True, timeout=WAIT)
        assert r.returncode != 0, binary
    r = subprocess.run([LINEWIRED, "--port=1", f"--dir={tmp_path}/nosuch"], capture_output=True,
                       text=True, timeout=WAIT)
    assert r.returncode == 2 and "not a directory" in r.stderr


# ---- --binary ----

def test_binary_bytes_both_ways(servers, tmp_path):
    prog = script(tmp_path, "bin.sh", """
printf 'a\\nb\\000c'
sleep 0.3
printf 'second\\n'
head -c 6
""")
    results = []
    for server in servers(["--binary"], [prog]):
        ws = connect(server.url("/"))
        ws.settimeout(WAIT)
        first = [ws.recv_data_frame(control_frame=True) for _ in range(2)]
        ws.send_binary(b"12\n")  # raw bytes in
        ws.send("34")  # a text message: its bytes and a newline
        rest = frames(ws)
        ws.close()
        got = [(op, f.data) for op, f in first] + rest
        assert {op for op, _ in got} == {2}, server.proc.args[0]  # binary messages only
        results.append(([d for _, d in got[:2]], b"".join(d for _, d in got[2:])))
    assert results[0] == results[1] == ([b"a\nb\x00c", b"second\n"], b"12\n34\n")


# ---- --devconsole ----

def test_devconsole_page_and_endpoint(servers, tmp_path):
    echo = script(tmp_path, "echo.sh", 'while IFS= read -r l; do echo "got:$l"; done\n')
    theirs, ours = servers(["--devconsole"], [echo])
    for server in (theirs, ours):
        page = exchange(server.port, path="/some/where?x=1")
        assert page.status == 200 and page.header("content-type").startswith("text/html")
        ws = connect(server.url("/some/where"))  # the endpoint keeps serving beside it
        ws.send("hi")
        assert read_lines(ws, 1) == ["got:hi"]
        ws.close()
    ours_page = exchange(ours.port, path="/").body.decode()
    assert "linewired" in ours_page and "websocketd console" not in ours_page
    assert "new WebSocket(" in ours_page
    for binary in (WEBSOCKETD, LINEWIRED):
        r = subprocess.run([binary, "--port=1", "--devconsole", f"--staticdir={tmp_path}", echo],
                           capture_output=True, text=True, timeout=WAIT)
        assert r.returncode != 0, binary


# ---- --header, --header-ws, --header-http ----

def test_headers_where_websocketd_puts_them(servers, tmp_path):
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>hi</p>\n")
    flags = ["--header=X-Any: 1", "--header-ws=X-Ws: 2", "--header-http=X-Http: 3",
             "--header-http=x-second: 4", f"--staticdir={tmp_path / 'www'}"]
    seen = []
    for server in servers(flags, [hello]):
        answers = {"101": upgrade(server.port, "/"), "200": exchange(server.port, path="/"),
                   "404": exchange(server.port, path="/nosuch")}
        seen.append({k: sorted(h for h in a.headers if h.startswith("x-") and h != "x-content-type-options")
                     for k, a in answers.items()})
        assert answers["200"].header("x-second") == "4"
    # websocketd 0.4.1 puts --header on the 101 only, despite its help ("any response").
    assert seen[0] == seen[1] == {"101": ["x-any", "x-ws"], "200": ["x-http", "x-second"],
                                  "404": ["x-http", "x-second"]}


def test_header_without_a_colon_is_refused():
    r = subprocess.run([LINEWIRED, "--port=1", "--header=nocolon", "/bin/cat"],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 2 and "NAME: VALUE" in r.stderr


# ---- --version, --license, --help ----

def test_version_license_help():
    for flag in ["--version", "--license"]:
        theirs = subprocess.run([WEBSOCKETD, "--port=1", flag], capture_output=True, text=True,
                                timeout=WAIT)
        ours = subprocess.run([LINEWIRED, "--port=1", flag], capture_output=True, text=True,
                              timeout=WAIT)
        assert theirs.returncode == ours.returncode == 0
        assert theirs.stdout.startswith("websocketd ") and ours.stdout.startswith("linewired ")
    # --help names every flag websocketd has.
    theirs = subprocess.run([WEBSOCKETD, "--help"], capture_output=True, text=True, timeout=WAIT)
    ours = subprocess.run([LINEWIRED, "--port=1", "--help"], capture_output=True, text=True,
                          timeout=WAIT)
    assert ours.returncode == 0
    their_flags = {f.lstrip("-") for f in re.findall(r"^\s+(-[a-z-]+)", theirs.stdout + theirs.stderr,
                                                     re.M)}
    assert len(their_flags) >= 20
    missing = [f for f in their_flags if f"--{f}" not in ours.stdout]
    assert not missing


# ---- --cgidir ----

def cgi_dir(tmp_path):
    d = tmp_path / "cgi"
    (d / "sub").mkdir(parents=True)
    script(d, "env.cgi", 'echo "Content-Type: text/plain"\necho "X-Script: yes"\necho\n'
           + ENV_DUMP + 'echo "BODY:"\ncat\n')
    script(d / "sub", "inner.cgi", 'echo "Content-Type: text/plain"\necho\necho inner\n')
    script(d, "status.cgi", "printf 'Status: 418 Teapot\\r\\nContent-Type: text/x-tea\\r\\n\\r\\nshort\\n'\n")
    script(d, "nohead.cgi", "echo 'no head at all'\n")
    script(d, "location.cgi", "printf 'Location: http://example.com/x\\n\\n'\n")
    (d / "plain.txt").write_text("not a script\n")
    return d


def cgi_env(answer):
    text = answer.body.decode()
    head, _, body = text.partition("BODY:\n")
    return dict(line.split("=", 1) for line in head.splitlines() if "=" in line), body


def test_cgidir_scripts(servers, tmp_path):
    d = cgi_dir(tmp_path)
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    theirs, ours = servers([f"--cgidir={d}"], [hello])
    answers = []
    for server in (theirs, ours):
        a = {
            "env": exchange(server.port, "POST", "/env.cgi?a=b", {"Content-Type": "text/x",
                                                                   "X-Foo": "bar"}, b"hello"),
            "inner": exchange(server.port, path="/sub/inner.cgi"),
            "status": exchange(server.port, path="/status.cgi"),
            "nohead": exchange(server.port, path="/nohead.cgi"),
            "location": exchange(server.port, path="/location.cgi"),
            "missing": exchange(server.port, path="/nosuch.cgi"),
            "extra": exchange(server.port, path="/env.cgi/extra"),
            "head": exchange(server.port, "HEAD", "/status.cgi"),
        }
        answers.append(a)
    t, o = answers
    for key in t:
        assert t[key].status == o[key].status, (key, t[key], o[key])
    assert o["env"].status == 200 and o["env"].header("x-script") == "yes"
    assert o["inner"].body == t["inner"].body == b"inner\n"
    assert o["status"].status == 418 and o["status"].body == t["status"].body == b"short\n"
    assert o["status"].header("content-type") == "text/x-tea"
    assert o["location"].header("location") == t["location"].header("location")
    assert o["head"].body == b""
    their_env, their_body = cgi_env(t["env"])
    our_env, our_body = cgi_env(o["env"])
    assert our_body == their_body == "hello"  # the request body is the script's stdin
    same = ["GATEWAY_INTERFACE", "REQUEST_METHOD", "QUERY_STRING", "REQUEST_URI", "PATH_INFO",
            "SCRIPT_NAME", "REMOTE_ADDR", "REMOTE_HOST", "SERVER_PROTOCOL", "CONTENT_LENGTH",
            "CONTENT_TYPE", "HTTP_X_FOO"]
    assert {n: our_env.get(n) for n in same} == {n: their_env.get(n) for n in same}
    assert set(their_env) - set(our_env) <= {"PWD"} | {n for n in their_env if n.startswith("LD_")}
    # Better: SERVER_NAME without the port (RFC 3875; websocketd's Go gives the Host
    # header whole) and SCRIPT_FILENAME absolute (websocketd's is relative to its own
    # folder, not the script's, where the script runs).
    assert our_env["SERVER_NAME"] == "127.0.0.1"
    assert our_env["SCRIPT_FILENAME"] == str(d / "env.cgi")
    # A file it cannot execute: websocketd 500, linewired 403 with the reason.
    theirs_plain = exchange(theirs.port, path="/plain.txt")
    ours_plain = exchange(ours.port, path="/plain.txt")
    assert theirs_plain.status == 500 and ours_plain.status == 403
    assert b"not executable" in ours_plain.body


def test_cgidir_scripts_count_against_maxforks(servers, tmp_path):
    d = cgi_dir(tmp_path)
    hold = script(tmp_path, "hold.sh", "echo ready\nexec sleep 60\n")
    for server in servers([f"--cgidir={d}", "--maxforks=1"], [hold]):
        ws = connect(server.url("/"))
        assert read_lines(ws, 1) == ["ready"]
        assert exchange(server.port, path="/sub/inner.cgi").status == 429, server.proc.args[0]
        ws.close()
        wait_until(lambda: exchange(server.port, path="/sub/inner.cgi").status == 200,
                   what="the slot back once the WebSocket left")


# ---- --redirport ----

def test_redirport(tmp_path):
    from wsclient import Server
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    pair = []
    try:
        for binary, name in [(WEBSOCKETD, "websocketd"), (LINEWIRED, "linewired")]:
            redirect = free_port()
            server = Server([binary], [f"--redirport={redirect}"], [hello], tmp_path, name)
            pair.append((server, redirect))
            wait_until(lambda: port_open(redirect), what=f"{name}'s --redirport")
        for server, redirect in pair:
            for path in ["/", "/some/path?x=1"]:
                a = exchange(redirect, path=path)
                assert a.status == 301, (server.proc.args[0], a)
                assert a.header("location") == f"http://127.0.0.1:{server.port}/"
    finally:
        for server, _ in pair:
            code = server.stop()
            if server.proc.args[0] == LINEWIRED:
                assert code == 0, server.log()


# ---- --reverselookup ----

def test_reverselookup(servers, tmp_path):
    dump = script(tmp_path, "env.sh", ENV_DUMP)
    theirs, ours = servers(["--reverselookup"], [dump])
    their_env, our_env = env_of(theirs.url("/")), env_of(ours.url("/"))
    assert our_env["REMOTE_HOST"] == their_env["REMOTE_HOST"]
    assert our_env["REMOTE_ADDR"] == "127.0.0.1"


def test_devconsole_in_a_browser(tmp_path):
    """The dev console in headless Chromium: it connects to its own path, a line typed
    and sent reaches the program, and the program's answer shows on the page."""
    from test_browser import CHROMIUM, Browser
    from wsclient import Server
    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("chromium is not installed here (CI has it)")
    echo = script(tmp_path, "echo.sh", 'echo "query:$QUERY_STRING"\n'
                  'while IFS= read -r l; do echo "got:$l"; done\n')
    server = Server([LINEWIRED], ["--devconsole"], [echo], tmp_path, "linewired")
    browser = Browser(tmp_path)
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"http://127.0.0.1:{server.port}/echo?x=1")
        text = "document.getElementById('log').innerText"
        wait_until(lambda: "query:x=1" in (browser.evaluate(text) or ""), timeout=6 * WAIT,
                   what="the page to connect and show the program's first line")
        assert browser.evaluate("document.getElementById('state').textContent") == "connected"
        browser.evaluate("document.getElementById('line').value = 'hello there';"
                         "document.getElementById('send').requestSubmit(); true")
        wait_until(lambda: "got:hello there" in (browser.evaluate(text) or ""), timeout=3 * WAIT,
                   what="the program's answer on the page")
    finally:
        browser.close()
        assert server.stop() == 0, server.log()
