"""A small WebSocket test client on Debian's python3-websocket (websocket-client):
every read is bounded, and a server that drops the TCP connection without a close
frame (websocketd does) is told apart from one that closes with a code."""

import os
import signal
import socket
import subprocess
import time

import websocket

from harness import WAIT, free_port, port_open, wait_until


class Closed:
    """How a connection ended: `code` is the close frame's status (None: no close frame)."""

    def __init__(self, code=None, reason=""):
        self.code = code
        self.reason = reason

    def __repr__(self):
        return f"Closed(code={self.code!r}, reason={self.reason!r})"


def connect(url, timeout=WAIT, **kw):
    """Opens a WebSocket; kw goes to websocket.create_connection (header=, origin=, ...)."""
    return websocket.create_connection(url, timeout=timeout, **kw)


def handshake_status(url, timeout=WAIT, **kw):
    """101 when the upgrade works, else the HTTP status the server answered with."""
    try:
        ws = connect(url, timeout=timeout, **kw)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


def upgrade_answer(port, path, headers=None, timeout=WAIT):
    """A raw WebSocket upgrade request: (status, headers dict (lowercase), body bytes) of
    a refusal (websocket-client keeps no body). For a 101 the body is empty."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode(errors="replace").split("\r\n")
        hdrs = {}
        for h in header_lines:
            k, _, v = h.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        status = int(status_line.split()[1])
        if status != 101:
            want = int(hdrs.get("content-length", "0"))
            while len(body) < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return status, hdrs, body


def read_until_closed(ws, timeout=WAIT, limit=100000):
    """Text frames until the server ends the connection: (lines, Closed)."""
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no close within {timeout:.0f}s; got {lines[-5:]}")
        ws.settimeout(remaining)
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            return lines, Closed(None)
        except (ConnectionResetError, BrokenPipeError):
            return lines, Closed(None)
        except websocket.WebSocketTimeoutException:
            continue
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return lines, Closed(code, data[2:].decode(errors="replace"))
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            lines.append(frame.data.decode(errors="replace"))
    return lines, Closed(None)


def read_lines(ws, n, timeout=WAIT):
    """Exactly n text frames (fails on a close or a timeout)."""
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {len(lines)} of {n} frames within {timeout:.0f}s: {lines}")
        ws.settimeout(remaining)
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise AssertionError(f"closed after {lines}")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            lines.append(frame.data.decode(errors="replace"))
    return lines


class Server:
    """A websocketd-style server process (websocketd itself, or linewired in drop-in
    mode) on a free loopback port, in its own session so nothing it starts is left."""

    def __init__(self, argv_prefix, flags, program, directory, name):
        self.port = free_port()
        self.log_path = os.path.join(str(directory), f"{name}.log")
        argv = list(argv_prefix) + [f"--port={self.port}"] + list(flags) + list(program)
        if name == "websocketd":
            argv.insert(len(argv_prefix) + 1, "--address=127.0.0.1")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=str(directory))
        log.close()
        try:
            wait_until(lambda: port_open(self.port) or self.proc.poll() is not None,
                       what=f"{name} to listen")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"{name} exited {self.proc.returncode}:\n{self.log()}")

    def url(self, path="/"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM, then whatever is left of its session is killed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(WAIT)
        return self.proc.returncode


def http_get(port, path, headers=None, method="GET", timeout=WAIT):
    """A raw HTTP/1.0-style GET: (status, headers dict (lowercase), body bytes)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode(errors="replace").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for h in header_lines:
        k, _, v = h.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body
