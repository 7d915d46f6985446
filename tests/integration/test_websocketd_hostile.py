"""websocketd drop-in mode against hostile clients (issue 21): every form of path
traversal against --dir, --staticdir and --cgidir, a CGI script that never ends, and a
--binary program that floods a client that does not read. linewired only: websocketd
is the reference for what works, not for what must be refused (test_websocketd_flags
shows where it lets more through)."""

import os
import socket
import time

import pytest

from harness import LINEWIRED, QUIET, SLOWDOWN, WAIT, pid_alive, script, wait_until
from websocketd_pair import exchange, upgrade
from wsclient import Server, connect

SECRET = "the-secret-outside-the-folder"

# Every way a path could try to leave the folder; each must be refused (or name
# nothing), never serve or run what lies outside.
TRAVERSALS = [
    "/../outside.sh", "/../secret.txt",
    "/%2e%2e/outside.sh", "/%2E%2E/secret.txt", "/.%2e/secret.txt",
    "/%252e%252e/secret.txt",  # double-encoded: one decoding leaves a name, not `..`
    "/..%2fsecret.txt", "/..%2Fsecret.txt", "/sub%2f..%2f..%2fsecret.txt",
    "/..%5csecret.txt", "/..\\secret.txt", "/sub/..\\..\\secret.txt",
    "/%00", "/secret.txt%00.html", "/sub/%00/../x",
    "/%", "/%zz", "/%2",
    "/escape", "/escape-dir/secret.txt", "/sub/escape",
    "//etc/passwd", "/./../secret.txt",
    "/" + "a" * 4000, "/" + "a/" * 3000 + "x", "/" + "%2e%2e/" * 500 + "secret.txt",
    "/" + "b" * 20000,  # past the 16 KiB head limit: the connection just ends
]


@pytest.fixture
def tree(tmp_path):
    """A folder to serve, with symlinks out of it, and beside it what must stay out:
    a secret file and a program that leaves a mark when it runs."""
    root = tmp_path / "served"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    mark = tmp_path / "ran"
    script(tmp_path, "outside.sh", f"touch {mark}\necho 'Content-Type: text/plain'\necho\n"
           f"echo {SECRET}\n")
    os.symlink(tmp_path / "outside.sh", root / "escape")
    os.symlink(tmp_path / "outside.sh", root / "sub" / "escape")
    os.symlink(tmp_path, root / "escape-dir")
    script(root, "ok.sh", "echo 'Content-Type: text/plain'\necho\necho fine\n")
    (root / "index.html").write_text("<p>fine</p>\n")
    return root, mark


def raw_request(port, target, upgrade_to_ws):
    """The target as bytes on the wire, whatever it holds: (status or None, body)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if upgrade_to_ws:
        lines[2] = "Connection: Upgrade"
        lines += ["Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                  "Sec-WebSocket-Version: 13"]
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk or (upgrade_to_ws and b"\r\n\r\n" in data + chunk):
                data += chunk
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return None, data
    return int(data.split(b" ", 2)[1]), data


def serve(tmp_path, flags, program=()):
    return Server([LINEWIRED], flags, list(program), tmp_path, "linewired")


@pytest.mark.parametrize("mode", ["dir", "staticdir", "cgidir"])
def test_no_path_leaves_the_folder(tmp_path, tree, mode):
    root, mark = tree
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    server = serve(tmp_path, [f"--{mode}={root}"], [] if mode == "dir" else [hello])
    try:
        for target in TRAVERSALS:
            status, data = raw_request(server.port, target, upgrade_to_ws=mode == "dir")
            assert status in (None, 400, 403, 404, 413, 431), (mode, target[:60], status, data[:200])
            assert SECRET.encode() not in data, (mode, target[:60])
            assert not mark.exists(), (mode, target[:60])
        # What is inside still works, and the server is still there.
        if mode == "dir":
            assert upgrade(server.port, "/ok.sh").status == 101
        elif mode == "cgidir":
            assert exchange(server.port, path="/ok.sh").body == b"fine\n"
        else:
            assert exchange(server.port, path="/").body == b"<p>fine</p>\n"
    finally:
        assert server.stop() == 0, server.log()


def test_cgi_that_never_ends_is_ended_with_its_connection(tmp_path):
    """A script that ignores TERM and never finishes: when its client goes, TERM, then
    KILL after --closems. Also before it printed its head."""
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    pids = tmp_path / "pids"
    script(cgi, "forever.cgi", f"""
trap '' TERM
echo $$ >> {pids}
echo 'Content-Type: text/plain'
echo
echo started
while :; do sleep 1; done
""")
    script(cgi, "silent.cgi", f"trap '' TERM\necho $$ >> {pids}\nwhile :; do sleep 1; done\n")
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    server = serve(tmp_path, [f"--cgidir={cgi}", "--closems=300"], [hello])
    try:
        for path, expect in [("/forever.cgi", b"started"), ("/silent.cgi", None)]:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            if expect:
                got = b""
                while expect not in got:
                    got += s.recv(4096)
            wait_until(lambda: pids.exists() and len(pids.read_text().split()) > 0,
                       what="the script to start")
            pid = int(pids.read_text().split()[-1])
            time.sleep(QUIET)
            assert pid_alive(pid), "the script should run while its client waits"
            s.close()
            left = time.monotonic()
            wait_until(lambda: not pid_alive(pid), timeout=WAIT, what=f"{path} to be killed")
            # TERM is ignored: KILL came after --closems, not after the default 5 s.
            assert time.monotonic() - left < 3 * SLOWDOWN
            pids.unlink()
        assert "the client left" in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_binary_flood_is_held_back_for_a_slow_client(tmp_path):
    """A --binary program writing 32 MiB to a client that reads nothing is held (the child
    blocks on write), as text output is; then every byte arrives, in order."""
    import websocket
    mark = tmp_path / "finished"
    size = 32 * 1024 * 1024
    flood = script(tmp_path, "flood.sh", f"yes 0123456789abcdef | head -c {size}\ntouch {mark}\n")
    server = serve(tmp_path, ["--binary"], [flood])
    try:
        ws = connect(server.url("/"))
        ws.settimeout(WAIT)
        opcode, frame = ws.recv_data_frame(control_frame=True)  # it started
        received = [frame.data]
        time.sleep(3 * QUIET)
        assert not mark.exists(), "the program should be blocked on write"
        deadline = time.monotonic() + 12 * WAIT
        while time.monotonic() < deadline:
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            assert opcode == websocket.ABNF.OPCODE_BINARY
            received.append(frame.data)
        data = b"".join(received)
        assert len(data) == size
        assert data == (b"0123456789abcdef\n" * (size // 17 + 1))[:size]
        assert mark.exists()
    finally:
        assert server.stop() == 0, server.log()


def test_cgi_request_bodies_are_bounded(tmp_path, tree):
    """A --cgidir body is read whole by its Content-Length: past 1 MiB 413, chunked 411;
    neither starts the script."""
    root, _ = tree
    runs = tmp_path / "runs"
    script(root, "count.sh", f"echo x >> {runs}\necho 'Content-Type: text/plain'\necho\ncat\n")
    hello = script(tmp_path, "hello.sh", "echo hi\n")
    server = serve(tmp_path, [f"--cgidir={root}"], [hello])
    try:
        big = exchange(server.port, raw=b"POST /count.sh HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 2000000\r\n\r\nabc")
        assert big.status == 413
        chunked = exchange(server.port, raw=b"POST /count.sh HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert chunked.status == 411
        assert not runs.exists()
        ok = exchange(server.port, "POST", "/count.sh", body=b"within")
        assert ok.status == 200 and ok.body == b"within"
    finally:
        assert server.stop() == 0, server.log()
