"""What the websocketd differential tests share: Debian's websocketd 0.4.1 and
`linewired` in drop-in mode started side by side with the same flags (`servers`), and a
raw HTTP/1.1 exchange that decodes chunked bodies, for --cgidir, --header-http and the
refusals a WebSocket client library hides. Every read is bounded."""

import os
import shutil
import socket
import time

import pytest

from harness import LINEWIRED, WAIT
from wsclient import Server

WEBSOCKETD = shutil.which("websocketd") or "/usr/bin/websocketd"

needs_websocketd = pytest.mark.skipif(not os.path.exists(WEBSOCKETD),
                                      reason="websocketd (Debian package) is not installed")


@pytest.fixture
def servers(tmp_path):
    """servers(flags, program=[]) → (websocketd, linewired), both stopped at teardown;
    linewired must then exit 0."""
    started = []

    def factory(flags, program=()):
        pair = (Server([WEBSOCKETD], flags, list(program), tmp_path, "websocketd"),
                Server([LINEWIRED], flags, list(program), tmp_path, "linewired"))
        started.extend(pair)
        return pair

    yield factory
    for s in started:
        code = s.stop()
        if s.proc.args[0] == LINEWIRED:
            assert code == 0, f"linewired exited {code}:\n{s.log()}"


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lowercase name → list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        return values[0] if values else None

    def __repr__(self):
        return f"Answer({self.status}, {self.headers}, {self.body[:200]!r})"


def _dechunk(data):
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2:]


def exchange(port, method="GET", path="/", headers=None, body=b"", raw=None, timeout=WAIT):
    """One request on a fresh connection (Connection: close), read until the server
    closes: an Answer, or None when the server closed without a status line."""
    if raw is None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    data = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError(f"no end of answer within {timeout:.0f}s: {data[:300]!r}")
    if not data.startswith(b"HTTP/"):
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for h in header_lines:
        k, _, v = h.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    if "chunked" in ",".join(hdrs.get("transfer-encoding", [])):
        rest = _dechunk(rest)
    return Answer(int(status_line.split()[1]), hdrs, rest)


def upgrade(port, path, headers=None, timeout=WAIT):
    """A WebSocket upgrade request: the server's answer head (an Answer with the body
    read so far), or None when it closed without one."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    data = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/"):
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for h in header_lines:
        k, _, v = h.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return Answer(int(status_line.split()[1]), hdrs, rest)
