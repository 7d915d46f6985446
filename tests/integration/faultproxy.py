"""A TCP fault proxy for the tests: network faults between linewired and its broker,
made in user space (this kernel has no netem qdisc). Standard library only.

    proxy = FaultProxy(broker.port)          # listens on a free loopback port
    agent config: broker.url = f"mqtt://127.0.0.1:{proxy.port}"
    proxy.delay(200)       # +200 ms each way, from now on (0: none)
    proxy.stall(5)         # 5 s in which no byte moves either way; connections stay open
                           # (new ones are accepted and held too): a Wi-Fi dropout.
                           # Then everything held flows on, nothing lost.
    proxy.cut()            # every open connection reset (RST, SO_LINGER 0), both sides
    proxy.partition(10)    # 10 s: open connections reset, new ones reset at accept
    proxy.counters()       # {"accepted", "refused", "reset", "open", "bytes_up", "bytes_down"}
    proxy.event_log()      # [(time.monotonic(), "accept" | "refuse" | "reset"), ...]
    proxy.close()          # stops the thread, closes every socket it had

`stall` and `partition` return at once: the proxy ends them by itself on its own clock,
so the test thread can watch what happens meanwhile. Only loopback: the proxy listens
on 127.0.0.1 and connects to 127.0.0.1.

Everything runs on one asyncio loop in one background thread; the controls are
thread-safe (they run on that loop and wait, bounded, for it to have done them).
"""

import asyncio
import socket
import struct
import threading
import time

HOST = "127.0.0.1"
CHUNK = 65536
QUEUE_CHUNKS = 64  # per direction: a reader stops reading when its writer is this far behind
CONTROL_TIMEOUT = 5.0


def _rst(writer):
    """Closes a connection with a reset (SO_LINGER on, 0 s) rather than a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class _Conn:
    """One proxied connection: the agent's side and the broker's side."""

    def __init__(self, proxy, cr, cw):
        self.proxy = proxy
        self.cr, self.cw = cr, cw       # client (agent) side
        self.ur = self.uw = None        # upstream (broker) side
        self.tasks = []
        self.closed = False

    def reset(self):
        if self.closed:
            return
        self.closed = True
        self.proxy.stats["reset"] += 1
        self.proxy.events.append((time.monotonic(), "reset"))
        _rst(self.cw)
        _rst(self.uw)
        for t in self.tasks:
            t.cancel()

    def close(self):
        """An orderly end (both sides done): FIN, not RST."""
        if self.closed:
            return
        self.closed = True
        for w in (self.cw, self.uw):
            if w is not None:
                w.transport.close()

    async def run(self):
        p = self.proxy
        try:
            await p.gate()  # a stall holds new connections too (SYN lost, retried)
            if p.partitioned():
                self.reset()
                return
            try:
                self.ur, self.uw = await asyncio.wait_for(
                    asyncio.open_connection(HOST, p.target_port), 5.0)
            except (OSError, asyncio.TimeoutError):
                self.reset()  # the broker is down: the agent sees a reset, as from a refusal
                return
            if self.closed:  # cut while connecting
                _rst(self.uw)
                return
            up = asyncio.ensure_future(self.pump(self.cr, self.uw, "bytes_up"))
            down = asyncio.ensure_future(self.pump(self.ur, self.cw, "bytes_down"))
            self.tasks += [up, down]
            results = await asyncio.gather(up, down, return_exceptions=True)
            if any(r == "reset" for r in results):
                self.reset()
            else:
                self.close()
        except asyncio.CancelledError:
            pass
        finally:
            p.conns.discard(self)

    async def pump(self, reader, writer, counter):
        """One direction: read, hold for the delay (and any stall), write, in order.
        Returns "eof" when the reader ended (forwarded as a FIN), "reset" on an error
        (the other side is then reset too, as a real path would show it)."""
        p = self.proxy
        loop = asyncio.get_running_loop()
        q = asyncio.Queue(QUEUE_CHUNKS)

        async def rx():
            try:
                while True:
                    await p.gate()
                    data = await reader.read(CHUNK)
                    await q.put((loop.time(), data))
                    if not data:
                        return
            except (OSError, asyncio.IncompleteReadError):
                await q.put((loop.time(), None))

        reading = asyncio.ensure_future(rx())
        self.tasks.append(reading)
        try:
            while True:
                stamp, data = await q.get()
                if data is None:
                    return "reset"
                wait = stamp + p.delay_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await p.gate()
                if not data:
                    try:
                        if writer.can_write_eof():
                            writer.write_eof()
                    except OSError:
                        return "reset"
                    return "eof"
                writer.write(data)
                p.stats[counter] += len(data)
                await writer.drain()
        except (OSError, ConnectionError):
            return "reset"
        finally:
            reading.cancel()


class FaultProxy:
    def __init__(self, target_port, port=0):
        self.target_port = target_port
        self.delay_s = 0.0
        self.stats = {"accepted": 0, "refused": 0, "reset": 0, "bytes_up": 0, "bytes_down": 0}
        self.conns = set()
        self.events = []  # (time.monotonic(), "accept" | "refuse" | "reset")
        self._stall_until = 0.0
        self._partition_until = 0.0
        self._flowing = None  # asyncio.Event, set while bytes may move
        self._timer = None
        self._ready = threading.Event()
        self._error = None
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.port = None
        self._thread = threading.Thread(target=self._main, args=(port,), name="faultproxy",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(CONTROL_TIMEOUT) or self._error:
            self.close()
            raise RuntimeError(f"fault proxy did not start: {self._error}")

    # ---------------------------------------------------------------- loop thread
    def _main(self, port):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve(port))
        except BaseException as e:  # noqa: BLE001 (reported to the constructor)
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _serve(self, port):
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.server = await asyncio.start_server(self._accept, HOST, port, reuse_address=True,
                                                 limit=CHUNK)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        if self.partitioned():
            self.stats["refused"] += 1
            self.events.append((time.monotonic(), "refuse"))
            _rst(writer)
            return
        self.stats["accepted"] += 1
        self.events.append((time.monotonic(), "accept"))
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        conn = _Conn(self, reader, writer)
        self.conns.add(conn)
        await conn.run()

    def partitioned(self):
        return self.loop.time() < self._partition_until

    async def gate(self):
        """Returns when bytes may move (at once unless a stall is on)."""
        if not self._flowing.is_set():
            await self._flowing.wait()

    def _reset_all(self):
        for c in list(self.conns):
            c.reset()
        self.conns.clear()

    def _arm_end(self, until):
        """(Re)arms the timer that ends a stall at `until` (loop time)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(until, self._end_stall)

    def _end_stall(self):
        self._timer = None
        if self.loop.time() >= self._stall_until - 0.001:
            self._flowing.set()
        else:
            self._arm_end(self._stall_until)

    # ---------------------------------------------------------------- controls (any thread)
    def _call(self, fn):
        """Runs fn on the loop and returns its result (bounded wait)."""
        if threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        box = {}

        def job():
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001
                box["error"] = e
            done.set()

        self.loop.call_soon_threadsafe(job)
        if not done.wait(CONTROL_TIMEOUT):
            raise RuntimeError("fault proxy loop did not answer")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def delay(self, ms):
        """Adds `ms` milliseconds of latency in each direction from now on (0: none).
        Bytes already held keep the delay they were read with."""
        def do():
            self.delay_s = max(0.0, ms / 1000.0)
        self._call(do)

    def stall(self, seconds):
        """From now for `seconds`, no byte moves either way; connections stay open and
        new ones are accepted but held. Returns at once."""
        def do():
            self._stall_until = max(self._stall_until, self.loop.time() + seconds)
            self._flowing.clear()
            self._arm_end(self._stall_until)
        self._call(do)

    def cut(self):
        """Resets every open connection now (RST to the agent and to the broker).
        Returns how many were reset."""
        def do():
            n = len(self.conns)
            self._reset_all()
            return n
        return self._call(do)

    def partition(self, seconds):
        """For `seconds` from now: every open connection reset, every new one reset as
        soon as accepted. Returns at once."""
        def do():
            self._partition_until = max(self._partition_until, self.loop.time() + seconds)
            return self._reset_all()
        self._call(do)

    def healed(self):
        """True when no stall and no partition is on."""
        return self._call(lambda: self._flowing.is_set() and not self.partitioned())

    def event_log(self):
        """A copy of the events: (time.monotonic(), what), what one of "accept",
        "refuse" (reset at accept in a partition), "reset" (a connection reset by a cut
        or a partition, or after an error on one side)."""
        return self._call(lambda: list(self.events))

    def counters(self):
        """A copy of the counters, plus `open`: connections open now."""
        def do():
            c = dict(self.stats)
            c["open"] = len(self.conns)
            return c
        return self._call(do)

    def close(self):
        """Stops: the listener and every connection closed (reset), the thread joined."""
        if not self._thread.is_alive():
            if not self.loop.is_closed():
                self.loop.close()
            return

        async def shutdown():
            if self.server is not None:
                self.server.close()
            self._reset_all()
            if self._timer is not None:
                self._timer.cancel()
            if self._flowing is not None:
                self._flowing.set()  # wakes whatever waits on a stall, to be cancelled
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.server is not None:
                await self.server.wait_closed()
            for _ in range(3):  # lets the aborted transports close their sockets
                await asyncio.sleep(0)
            self.loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        except RuntimeError:
            pass
        self._thread.join(CONTROL_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("fault proxy thread did not stop")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_healed(proxy, timeout=30.0):
    """Waits (bounded) until a stall or partition has ended."""
    deadline = time.monotonic() + timeout
    while not proxy.healed():
        if time.monotonic() > deadline:
            raise AssertionError("the fault proxy did not heal in time")
        time.sleep(0.05)
