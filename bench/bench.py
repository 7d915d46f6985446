#!/usr/bin/python3
"""linewire benchmarks (issue 7): linewired side by side with websocketd and mosquitto's
own clients, in one run, on one private mosquitto. Prints a Markdown table of results
and ratios; bench/README.md explains each row.

Every measurement is bounded in time and every process it starts is stopped at the end
(the harness's Broker and Agent, plus the Procs list here). Not a test: nothing here
asserts a speed; the numbers go in bench/README.md.

    bench/run.sh                       # builds a Release tree and runs everything
    bench/bench.py --only spawn,size   # selected parts against LINEWIRED / LINEWIRE
"""

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402
import websocket  # noqa: E402  (Debian's python3-websocket: websocket-client)
from harness import Agent, Broker, free_port, port_open, unique  # noqa: E402
from procfs import children, cpu_seconds, status  # noqa: E402

LINEWIRED = os.environ.get("LINEWIRED", os.path.join(HERE, "..", "build-bench", "linewired"))
WEBSOCKETD = "/usr/bin/websocketd"
PAGE = os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- helpers


class Peak(threading.Thread):
    """Samples a process's VmRSS and RssAnon every 20 ms until finish(); returns the peaks."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, {"VmRSS": 0, "RssAnon": 0}, threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.02):
            try:
                now = status(self.pid)
                for k in self.peak:
                    self.peak[k] = max(self.peak[k], now[k])
            except (OSError, KeyError):
                return

    def finish(self):
        self.done.set()
        self.join(2)
        return self.peak


class Procs:
    """Processes started by a benchmark, all stopped at the end whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(args, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait(5)
        self.procs = []


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_open(port):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


class Subscriber:
    """A paho client (the same library as the WebSocket side's Python client) that
    records when each message arrives."""

    def __init__(self, port, topics):
        self.c = mqtt.Client(client_id=unique("bench"), protocol=mqtt.MQTTv5)
        self.cond = threading.Condition()
        self.first = {}  # topic -> monotonic time of its first message
        self.payloads = {}  # topic -> last payload
        self.finals = {}  # run state topic -> its final state document
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        # As websocket-client does by default, and linewired and linewire do.
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        for t in topics:
            self.c.subscribe(t, qos=1)
        time.sleep(0.3)

    def _on_message(self, client, userdata, m):
        now = time.monotonic()
        with self.cond:
            self.first.setdefault(m.topic, now)
            self.payloads[m.topic] = m.payload
            if m.topic.endswith("/state") and m.payload:
                doc = json.loads(m.payload)
                if doc.get("state") != "running":
                    self.finals[m.topic] = doc
            self.cond.notify_all()

    def wait(self, pred, timeout):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise RuntimeError("timed out waiting for the agent")

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def agent_for(tmp, broker, commands, config=None):
    cfg = {"log_level": "warn", "keep_runs": 10}
    cfg.update(config or {})
    a = Agent(os.path.join(tmp, unique("agent")), broker, commands=commands, config=cfg,
              prefix="bench")
    a.start(args=("--log-level", "warn"))
    return a


# --------------------------------------------------------------------------- benchmarks


def bench_spawn(ctx, rows):
    """Request → first line of a trivial program, N times in a row."""
    n = ctx.spawn_n
    a = agent_for(ctx.tmp, ctx.broker, {"hello": {"exec": ["/bin/echo", "hello"]}})
    sub = Subscriber(ctx.broker.port, [f"{a.base}/run/+/out"])
    mqtt_times = []
    try:
        for _ in range(n):
            rid = unique("s")
            topic = f"{a.base}/run/{rid}/out"
            t0 = time.monotonic()
            sub.publish(f"{a.base}/cmd/hello/start", json.dumps({"id": rid}))
            sub.wait(lambda: topic in sub.first, 10)
            mqtt_times.append(sub.first[topic] - t0)
    finally:
        sub.close()
        a.teardown()

    def ws_times(args):
        port = free_port()
        p = ctx.procs.start([*args(port), "/bin/echo", "hello"])
        try:
            wait_port(port)
            times = []
            for _ in range(n):
                t0 = time.monotonic()
                ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=10)
                ws.recv()
                times.append(time.monotonic() - t0)
                ws.close()
            return times
        finally:
            p.kill()
            p.wait(5)

    wsd = ws_times(lambda port: [WEBSOCKETD, f"--port={port}", "--address=127.0.0.1"])
    own = ws_times(lambda port: [LINEWIRED, f"--port={port}", "--address=127.0.0.1"])

    def row(name, t, base):
        rows.append((f"spawn round trip, {name} (p50 / p90 / p99, {n} runs)",
                     f"{ms(pct(t, 50))} / {ms(pct(t, 90))} / {ms(pct(t, 99))}",
                     f"p50 {ratio(pct(t, 50), pct(base, 50))} websocketd"))

    row("linewired over MQTT: request → first out", mqtt_times, wsd)
    row("linewired WebSocket listener: connect → first frame", own, wsd)
    row("websocketd: connect → first frame", wsd, wsd)
    ctx.results["spawn_p50_ratio"] = pct(mqtt_times, 50) / pct(wsd, 50)


def timed_sub(ctx, topic, count, qos):
    """mosquitto_sub receiving `count` messages; returns (process, path of its output)."""
    return ctx.procs.start(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(ctx.broker.port),
                            "-q", str(qos), "-C", str(count), "-t", topic, "-W", "600"])


def wait_exit(p, timeout):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise RuntimeError(f"{p.args[0]} did not finish within {timeout}s")


def bench_throughput(ctx, rows):
    """N lines to one subscriber (mosquitto_sub), QoS 0 and 1."""
    n = ctx.lines
    limit = {}
    for qos in (0, 1):
        topic = f"bench/limit/{unique('q')}"
        sub = timed_sub(ctx, topic, n, qos)
        time.sleep(0.5)
        t0 = time.monotonic()
        # mosquitto_pub -l (2.0.11) disconnects as soon as its stdin ends, dropping the
        # QoS 1 messages it has not sent yet (3,406 of 200,000 arrived here): its stdin
        # stays open until the subscriber has every line, then it is stopped.
        feed = ctx.procs.start(["sh", "-c", f"seq 1 {n}; exec sleep 600"],
                               stdout=subprocess.PIPE)
        pub = ctx.procs.start(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(ctx.broker.port),
                               "-q", str(qos), "-t", topic, "-l"], stdin=feed.stdout)
        feed.stdout.close()
        wait_exit(sub, 600)
        limit[qos] = n / (time.monotonic() - t0)
        for p in (feed, pub):
            p.terminate()
            wait_exit(p, 10)
        rows.append((f"throughput, mosquitto_pub -l → mosquitto_sub, QoS {qos} (the limit)",
                     f"{limit[qos]:,.0f} lines/s", "1.00×"))

    streaming_peak = {"VmRSS": 0, "RssAnon": 0}
    for qos in (0, 1):
        a = agent_for(ctx.tmp, ctx.broker, {"seq": {"exec": ["/usr/bin/seq", "1", str(n)]}},
                      {"qos": qos})
        try:
            rid = unique("t")
            sub = timed_sub(ctx, f"{a.base}/run/{rid}/out", n, qos)
            time.sleep(0.5)
            peak = Peak(a.pid)
            cpu0 = cpu_seconds([a.pid])
            t0 = time.monotonic()
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(ctx.broker.port),
                            "-q", "1", "-t", f"{a.base}/cmd/seq/start", "-m",
                            json.dumps({"id": rid})], check=True, timeout=10)
            wait_exit(sub, 600)
            rate = n / (time.monotonic() - t0)
            cpu = cpu_seconds([a.pid]) - cpu0
            streaming_peak = {k: max(v, peak.finish()[k]) for k, v in streaming_peak.items()}
        finally:
            a.teardown()
        ctx.results[f"qos{qos}_ratio"] = rate / limit[0]
        rows.append((f"throughput, linewired seq 1 {n} → mosquitto_sub, QoS {qos}",
                     f"{rate:,.0f} lines/s ({cpu:.1f} s agent CPU)",
                     f"{ratio(rate, limit[qos])} the QoS {qos} limit, "
                     f"{ratio(rate, limit[0])} the QoS 0 limit"))
    ctx.results["linewired_streaming_rss"] = streaming_peak

    # websocketd: the same program, frames counted by the Python client.
    port = free_port()
    p = ctx.procs.start([WEBSOCKETD, f"--port={port}", "--address=127.0.0.1", "/usr/bin/seq", "1",
                         str(n)])
    try:
        wait_port(port)
        peak = Peak(p.pid)
        t0 = time.monotonic()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=60)
        got = 0
        try:
            while got < n:
                ws.recv()
                got += 1
        except websocket.WebSocketConnectionClosedException:
            pass
        rate = got / (time.monotonic() - t0)
        ws.close()
        ctx.results["websocketd_streaming_rss"] = peak.finish()
    finally:
        p.kill()
        p.wait(5)
    rows.append((f"throughput, websocketd seq 1 {n} → Python client ({got:,} frames)",
                 f"{rate:,.0f} lines/s", f"{ratio(rate, limit[0])} the QoS 0 limit"))


def bench_memory(ctx, rows):
    """RSS idle, streaming (from the throughput run), and with 100 and 1,000 runs."""
    a = agent_for(ctx.tmp, ctx.broker, {"hold": {"exec": ["/bin/sleep", "20"]}},
                  {"limits": {"max_runs": 1100}})
    idle = {}
    held = {}
    try:
        time.sleep(1)
        idle["linewired"] = status(a.pid)
        sub = Subscriber(ctx.broker.port, [f"{a.base}/cmd/hold/running"])
        try:
            started = 0
            for k in (100, 1000):
                for _ in range(k - started):
                    sub.publish(f"{a.base}/cmd/hold/start", "{}")
                started = k
                end = time.monotonic() + 60
                while time.monotonic() < end and len(children(a.pid)) < k:
                    time.sleep(0.2)
                held[("linewired", k)] = (status(a.pid), len(children(a.pid)))
        finally:
            sub.close()
    finally:
        a.teardown()
    port = free_port()
    p = ctx.procs.start([WEBSOCKETD, f"--port={port}", "--address=127.0.0.1", "/bin/sleep", "20"])
    conns = []
    try:
        wait_port(port)
        time.sleep(0.5)
        idle["websocketd"] = status(p.pid)
        for k in (100, 1000):
            while len(conns) < k:
                conns.append(websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=10))
            end = time.monotonic() + 60
            while time.monotonic() < end and len(children(p.pid)) < k:
                time.sleep(0.2)
            held[("websocketd", k)] = (status(p.pid), len(children(p.pid)))
    finally:
        for ws in conns:
            ws.close()
        p.kill()
        p.wait(5)
    ctx.results["idle_rss"] = idle["linewired"]["VmRSS"]
    ctx.results["idle_rss_anon"] = idle["linewired"]["RssAnon"]

    def both(a, b):
        return (f"VmRSS {ratio(a['VmRSS'], b['VmRSS'])}, RssAnon {ratio(a['RssAnon'], b['RssAnon'])}"
                " websocketd")

    rows.append(("RSS idle, linewired (VmRSS, RssAnon)",
                 f"{mib(idle['linewired']['VmRSS'])}, {mib(idle['linewired']['RssAnon'])}",
                 both(idle["linewired"], idle["websocketd"])))
    rows.append(("RSS idle, websocketd (VmRSS, RssAnon)",
                 f"{mib(idle['websocketd']['VmRSS'])}, {mib(idle['websocketd']['RssAnon'])}", ""))
    lw, wd = ctx.results.get("linewired_streaming_rss"), ctx.results.get("websocketd_streaming_rss")
    if lw and wd:
        rows.append((f"RSS peak while streaming {ctx.lines:,} lines, linewired / websocketd "
                      "(VmRSS; RssAnon)",
                     f"{mib(lw['VmRSS'])} / {mib(wd['VmRSS'])}; "
                     f"{mib(lw['RssAnon'])} / {mib(wd['RssAnon'])}", both(lw, wd)))
        ctx.results["streaming_ratio"] = lw["VmRSS"] / wd["VmRSS"]
        ctx.results["streaming_ratio_anon"] = lw["RssAnon"] / wd["RssAnon"]
    for k in (100, 1000):
        (ls, lc), (ws_, wc) = held[("linewired", k)], held[("websocketd", k)]
        rows.append((f"RSS with {k} runs, linewired ({lc} children) / websocketd ({wc} children)"
                      " (VmRSS; RssAnon)",
                     f"{mib(ls['VmRSS'])} / {mib(ws_['VmRSS'])}; "
                     f"{mib(ls['RssAnon'])} / {mib(ws_['RssAnon'])}", both(ls, ws_)))


def bench_concurrency(ctx, rows):
    """1,000 concurrent runs of `sleep 1; echo done`: all complete, time to the last
    final state, the agent's CPU seconds."""
    n = 1000
    prog = os.path.join(ctx.tmp, "sleep1.sh")
    with open(prog, "w") as f:
        f.write("#!/bin/sh\nsleep 1\necho done\n")
    os.chmod(prog, 0o755)
    a = agent_for(ctx.tmp, ctx.broker, {"s": {"exec": [prog]}},
                  {"limits": {"max_runs": n + 100}, "keep_runs": n + 100})
    sub = Subscriber(ctx.broker.port, [f"{a.base}/run/+/state"])
    try:
        ids = [unique("c") for _ in range(n)]
        cpu0 = cpu_seconds([a.pid])
        t0 = time.monotonic()
        for rid in ids:
            sub.publish(f"{a.base}/cmd/s/start", json.dumps({"id": rid}))
        sub.wait(lambda: len(sub.finals) >= n, 120)
        took = time.monotonic() - t0
        cpu = cpu_seconds([a.pid]) - cpu0
        ok = sum(1 for f in sub.finals.values() if f.get("exit_code") == 0 and f.get("lines") == 1)
    finally:
        sub.close()
        a.teardown()
    rows.append((f"{n} concurrent runs of sleep 1; echo done",
                 f"{ok}/{n} exited 0 with their line; last final state after {took:.2f} s; "
                 f"agent CPU {cpu:.2f} s", ""))


def bench_size(ctx, rows):
    """Stripped sizes of the binaries: this build, and the arm64 cross build if there."""
    builds = [("amd64", os.path.dirname(LINEWIRED), "strip")]
    arm = os.path.join(HERE, "..", "build-arm64")
    if os.path.exists(os.path.join(arm, "linewired")):
        builds.append(("arm64", arm, "aarch64-linux-gnu-strip"))
    for arch, d, strip in builds:
        for exe in ("linewired", "linewire"):
            src = os.path.join(d, exe)
            if not os.path.exists(src):
                continue
            dst = os.path.join(ctx.tmp, f"{exe}-{arch}")
            subprocess.run([strip, "--strip-all", "-o", dst, src], check=True, timeout=60)
            size = os.path.getsize(dst)
            if exe == "linewired":
                ctx.results[f"size_{arch}"] = size
            rows.append((f"stripped {exe}, {arch}", mib(size), ""))
    wsd = os.path.getsize(WEBSOCKETD)
    rows.append(("websocketd (Debian's, as installed)", mib(wsd), ""))


BENCHES = {
    "spawn": bench_spawn,
    "throughput": bench_throughput,
    "memory": bench_memory,
    "concurrency": bench_concurrency,
    "size": bench_size,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    ap.add_argument("--spawn-runs", type=int, default=500)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--nagle", action="store_true",
                    help="leave mosquitto's set_tcp_nodelay at its default (false)")
    args = ap.parse_args()

    class Ctx:
        pass

    ctx = Ctx()
    ctx.spawn_n, ctx.lines, ctx.results = args.spawn_runs, args.lines, {}
    ctx.procs = Procs()
    # A broker set up for latency (examples/mosquitto/linewire.conf): with Nagle on, a
    # small reply waits for a delayed ACK (bench/README.md, "Spawn round trip").
    ctx.broker_extra = [] if args.nagle else ["set_tcp_nodelay true"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="linewire-bench-") as tmp:
        ctx.tmp = tmp
        ctx.broker = Broker(os.path.join(tmp, "broker"), name="mosquitto", extra=ctx.broker_extra).start()
        try:
            for name in args.only.split(","):
                t0 = time.monotonic()
                print(f"==> {name}", file=sys.stderr, flush=True)
                BENCHES[name](ctx, rows)
                print(f"    {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        finally:
            ctx.procs.stop_all()
            ctx.broker.kill()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} × {cpu}, {platform.platform()}, "
          f"mosquitto {mosquitto_version()}\n")
    print("| measurement | result | ratio |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print("\n```json\n" + json.dumps(ctx.results, indent=1) + "\n```")


def mosquitto_version():
    out = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()[0]
    return first.split("version")[-1].strip()


if __name__ == "__main__":
    main()
