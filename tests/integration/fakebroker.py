"""A small fake MQTT broker for the tests of connection trouble (test_stop.py).

Standard library only: an asyncio server in a background thread, on a loopback port.
It reads each connection's CONNECT properly (fixed header, remaining-length varint,
protocol name and level) and then, by `mode`:

- `silent`: answers nothing, ever; reads and drops whatever else arrives (a broker that
  accepts TCP but never sends CONNACK).
- `refuse`: answers a refusing CONNACK and closes. An MQTT 5 CONNECT gets the v5 form
  (`20 03 00 <reason> 00`: flags, reason code, empty properties) with `reason`
  (e.g. 0x84 unsupported protocol version, 0x87 not authorized); a 3.1.1 (or 3.1)
  CONNECT gets `20 02 00 <code>` with `v311_code` (1..5; by default the 3.1.1 code that
  matches `reason`). With `delay`, the CONNACK waits that many seconds (a connection
  attempt under way, then refused), for every CONNECT after the first `delay_after`.
- `v311_only`: a broker that does not speak MQTT 5: a CONNECT with protocol level 5 is
  answered CONNACK 0x84 (v5 form) and closed; any other CONNECT is forwarded, bytes
  unchanged, to a real broker on `upstream_port`, and from then on the connection is a
  transparent proxy in both directions.
- `proxy`: every CONNECT is forwarded that way (with `delay`, held first: a real broker's
  answer, late).

It counts accepted connections and CONNECTs by protocol level (`connects(5)`,
`connects(4)`, `levels` in arrival order) and can wait for a count with a bound.
`stop()` (or leaving a `with` block) closes the listener and every connection, stops the
loop and joins the thread.
"""

import asyncio
import threading
import time

CONNECT = 1
CONNACK = 2

# MQTT 5 CONNACK reason codes and the 3.1.1 return code that means the same.
V5_TO_V311 = {
    0x84: 1,  # unsupported protocol version -> unacceptable protocol version
    0x85: 2,  # client identifier not valid -> identifier rejected
    0x88: 3,  # server unavailable
    0x89: 3,  # server busy -> server unavailable
    0x86: 4,  # bad user name or password
    0x87: 5,  # not authorized
    0x8C: 5,  # bad authentication method -> not authorized
}

MODES = ("silent", "refuse", "v311_only", "proxy")


class ProtocolError(Exception):
    pass


async def read_varint(reader):
    """The remaining length of the fixed header (1 to 4 bytes, 7 bits each)."""
    value, shift = 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7
    raise ProtocolError("remaining length longer than 4 bytes")


def encode_varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def read_packet(reader, max_size=1 << 20):
    """(packet type, flags, raw bytes of the whole packet, body)."""
    first = await reader.readexactly(1)
    length = await read_varint(reader)
    if length > max_size:
        raise ProtocolError(f"packet of {length} bytes")
    body = await reader.readexactly(length)
    raw = first + encode_varint(length) + body
    return first[0] >> 4, first[0] & 0x0F, raw, body


def parse_connect(body):
    """(protocol name, protocol level, connect flags, keep alive) of a CONNECT body."""
    if len(body) < 2:
        raise ProtocolError("CONNECT too short")
    n = int.from_bytes(body[0:2], "big")
    if len(body) < 2 + n + 4:
        raise ProtocolError("CONNECT too short for its protocol name")
    name = body[2:2 + n].decode("utf-8", "replace")
    level = body[2 + n]
    flags = body[3 + n]
    keepalive = int.from_bytes(body[4 + n:6 + n], "big")
    if name not in ("MQTT", "MQIsdp"):
        raise ProtocolError(f"protocol name {name!r}")
    return name, level, flags, keepalive


def connack(level, reason, v311_code=None):
    """A refusing (or accepting, reason 0) CONNACK in the form the CONNECT's level needs."""
    if level >= 5:
        return bytes([CONNACK << 4, 3, 0, reason, 0])  # flags, reason code, no properties
    code = v311_code if v311_code is not None else (V5_TO_V311.get(reason, 5) if reason else 0)
    return bytes([CONNACK << 4, 2, 0, code])


class FakeBroker:
    def __init__(self, mode="silent", reason=0x87, v311_code=None, upstream_port=None, port=0,
                 delay=0.0, delay_after=0):
        assert mode in MODES, mode
        assert mode not in ("v311_only", "proxy") or upstream_port, f"{mode} needs upstream_port"
        self.mode = mode
        self.reason = reason
        self.v311_code = v311_code
        self.upstream_port = upstream_port
        self.port = port
        self.delay = delay
        self.delay_after = delay_after
        self.connections = 0          # TCP connections accepted
        self.levels = []              # protocol level of each CONNECT, in arrival order
        self.events = []              # (monotonic time, what) for the record
        self.errors = []              # protocol errors seen (a test may assert none)
        self.cond = threading.Condition()
        self.loop = None
        self.thread = None
        self.server = None
        self._tasks = set()
        self._writers = set()
        self._ready = threading.Event()
        self._start_error = None

    # ------------------------------------------------------------------ public API

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self):
        self.thread = threading.Thread(target=self._run, name=f"fakebroker-{self.mode}", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise AssertionError("fake broker did not start")
        if self._start_error:
            raise self._start_error
        return self

    def stop(self, timeout=5.0):
        if self.loop is None or self.thread is None:
            return
        if self.loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                fut.result(timeout)
            except Exception:  # noqa: BLE001 - best effort, the join below is the check
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        alive = self.thread.is_alive()
        self.thread = None
        if alive:
            raise AssertionError("fake broker thread did not end")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def connects(self, level=None):
        """How many CONNECTs arrived (with protocol level `level`, or all)."""
        with self.cond:
            return len(self.levels) if level is None else sum(1 for lv in self.levels if lv == level)

    def wait_connects(self, n, level=None, timeout=10.0):
        """Waits until at least `n` CONNECTs (of `level`) arrived; returns the count."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                have = len(self.levels) if level is None else sum(1 for lv in self.levels if lv == level)
                if have >= n:
                    return have
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"fake broker ({self.mode}): {have} CONNECT(s) of level {level} after "
                        f"{timeout:.1f}s, wanted {n}; levels so far {self.levels}")
                self.cond.wait(remaining)

    # ------------------------------------------------------------------ loop thread

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", self.port))
            self.port = self.server.sockets[0].getsockname()[1]
        except Exception as e:  # noqa: BLE001 - reported to start()
            self._start_error = e
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            # Whatever stop() did not finish: cancel and let the cancellations run.
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _shutdown(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _note(self, what):
        with self.cond:
            self.events.append((time.monotonic(), what))
            self.cond.notify_all()

    async def _accept(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        with self.cond:
            self.connections += 1
            self.cond.notify_all()
        self._note("accept")
        upstream = None
        try:
            ptype, _, raw, body = await read_packet(reader)
            if ptype != CONNECT:
                raise ProtocolError(f"first packet has type {ptype}, not CONNECT")
            _, level, _, _ = parse_connect(body)
            with self.cond:
                self.levels.append(level)
                number = len(self.levels)
                self.cond.notify_all()
            self._note(f"CONNECT level {level}")
            if self.mode == "silent":
                while await reader.read(65536):
                    pass
            elif self.mode == "refuse":
                if self.delay and number > self.delay_after:
                    self._note(f"holding CONNECT {number} for {self.delay}s")
                    await asyncio.sleep(self.delay)
                writer.write(connack(level, self.reason, self.v311_code))
                await writer.drain()
                self._note(f"CONNACK refused (level {level})")
            elif self.mode in ("v311_only", "proxy"):
                if level >= 5 and self.mode == "v311_only":
                    writer.write(connack(5, 0x84))
                    await writer.drain()
                    self._note("CONNACK 0x84 to a v5 CONNECT")
                else:
                    if self.delay and number > self.delay_after:
                        self._note(f"holding CONNECT {number} for {self.delay}s")
                        await asyncio.sleep(self.delay)
                    up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                    self._writers.add(upstream)
                    upstream.write(raw)
                    await upstream.drain()
                    self._note(f"proxied (level {level})")
                    await self._pipe_both(reader, writer, up_reader, upstream)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as e:
            with self.cond:
                self.errors.append(str(e))
        except asyncio.CancelledError:
            pass
        finally:
            for w in (upstream, writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
                    try:
                        await asyncio.wait_for(w.wait_closed(), 1)
                    except (Exception, asyncio.CancelledError):  # noqa: BLE001
                        pass
            self._tasks.discard(task)

    async def _pipe_both(self, r1, w1, r2, w2):
        async def pipe(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:  # noqa: BLE001
                    pass
        t1 = asyncio.ensure_future(pipe(r1, w2))
        t2 = asyncio.ensure_future(pipe(r2, w1))
        try:
            await asyncio.wait({t1, t2}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (t1, t2):
                t.cancel()
            await asyncio.gather(t1, t2, return_exceptions=True)
