#!/usr/bin/python3
"""Performance on the brokers users run (issue 19): the same measurements on two private
mosquittos side by side, one stock (Nagle on, as Debian's and Home Assistant's) and one
with `set_tcp_nodelay true`, in one run, so that every ratio compares figures taken
moments apart on the same machine.

- CPU per streamed line at QoS 0 and 1: `mosquitto_pub -l` (stdin held open until the
  subscriber has every line: at EOF 2.0.11 drops the QoS 1 lines it has not sent yet),
  Paho C's own floor (bench/paho_floor.c, built here with `cc -O2`) and linewired
  running `seq 1 N` (history on, the default), each to one `mosquitto_sub -C N`.
- Spawn round trip seen by a plain QoS 1 subscriber (paho-mqtt, no socket options):
  its start request (QoS 1) to the first `out` line, back to back; and the same
  subscriber when the request comes from a second plain client.
- `linewire run --no-stdin DEVICE echo`: the whole client process, start to exit.

Not a test: nothing asserts a time. Every wait is bounded; everything started is stopped.

  LINEWIRED=build/linewired LINEWIRE=build/cli/linewire /usr/bin/python3 bench/brokers.py
  # --lines 200000 --repeat 3 --spawn-runs 200 --run-runs 40
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402
from bench import Procs, agent_for, pct, wait_exit  # noqa: E402
from harness import Broker, unique  # noqa: E402
from procfs import cpu_seconds  # noqa: E402

LINEWIRE = os.environ.get("LINEWIRE", os.path.join(HERE, "..", "build-bench", "linewire"))
SETTINGS = {"stock": [], "nodelay": ["set_tcp_nodelay true"]}


def timed_sub(ctx, broker, topic, count, qos):
    return ctx.procs.start(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q",
                            str(qos), "-C", str(count), "-t", topic, "-W", "600"])


def build_floor(tmp):
    exe = os.path.join(tmp, "paho_floor")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "paho_floor.c"), "-lpaho-mqtt3as"],
                   check=True, timeout=120)
    return exe


def cpu_mosquitto_pub(ctx, broker, qos, n):
    topic = f"bench/pub/{unique('q')}"
    sub = timed_sub(ctx, broker, topic, n, qos)
    time.sleep(0.3)
    feed = ctx.procs.start(["sh", "-c", f"seq 1 {n}; exec sleep 600"], stdout=subprocess.PIPE)
    pub = ctx.procs.start(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q",
                           str(qos), "-t", topic, "-l"], stdin=feed.stdout)
    feed.stdout.close()
    wait_exit(sub, 600)
    cpu = cpu_seconds([pub.pid])
    for p in (feed, pub):
        p.terminate()
        wait_exit(p, 10)
    return cpu / n


def cpu_floor(ctx, broker, qos, n, lib=None):
    topic = f"bench/floor/{unique('q')}"
    sub = timed_sub(ctx, broker, topic, n, qos)
    time.sleep(0.3)
    env = dict(os.environ, LD_LIBRARY_PATH=lib) if lib else None
    out = subprocess.run([ctx.floor, f"tcp://127.0.0.1:{broker.port}", topic, str(qos), str(n),
                          "--seq"], capture_output=True, text=True, timeout=600, check=True,
                         env=env)
    wait_exit(sub, 600)
    return float(out.stdout.split()[0]) / n


def cpu_agent(ctx, broker, qos, n):
    a = agent_for(ctx.tmp, broker, {"seq": {"exec": ["/usr/bin/seq", "1", str(n)]}}, {"qos": qos})
    try:
        rid = unique("t")
        sub = timed_sub(ctx, broker, f"{a.base}/run/{rid}/out", n, qos)
        time.sleep(0.3)
        cpu0 = cpu_seconds([a.pid])
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t",
                        f"{a.base}/cmd/seq/start", "-m", json.dumps({"id": rid})], check=True,
                       timeout=10)
        wait_exit(sub, 600)
        return (cpu_seconds([a.pid]) - cpu0) / n
    finally:
        a.teardown()


class Plain:
    """paho-mqtt as a user's script has it: defaults, no socket options."""

    def __init__(self, port, topics=()):
        self.c = mqtt.Client(client_id=unique("plain"), protocol=mqtt.MQTTv5)
        self.cond = threading.Condition()
        self.first = {}
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        for t in topics:
            self.c.subscribe(t, qos=1)
        time.sleep(0.3)

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.first.setdefault(m.topic, time.monotonic())
            self.cond.notify_all()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def spawn_rtt(ctx, broker, n, separate):
    a = agent_for(ctx.tmp, broker, {"hello": {"exec": ["/bin/echo", "hello"]}})
    sub = Plain(broker.port, [f"{a.base}/run/+/out"])
    req = Plain(broker.port) if separate else sub
    times = []
    try:
        for _ in range(n):
            rid = unique("s")
            topic = f"{a.base}/run/{rid}/out"
            t0 = time.monotonic()
            req.c.publish(f"{a.base}/cmd/hello/start", json.dumps({"id": rid}), qos=1)
            with sub.cond:
                if not sub.cond.wait_for(lambda: topic in sub.first, 10):
                    raise RuntimeError("no output from the agent within 10 s")
            times.append(sub.first[topic] - t0)
    finally:
        if separate:
            req.close()
        sub.close()
        a.teardown()
    return times


def run_rtt(ctx, broker, n):
    a = agent_for(ctx.tmp, broker, {"echo": {"exec": ["/bin/echo", "hi"]}})
    cmd = [LINEWIRE, "--broker", broker.url, "--prefix", a.prefix, "run", "--no-stdin", a.device,
           "echo"]
    times = []
    try:
        for i in range(n + 2):
            t0 = time.monotonic()
            r = subprocess.run(cmd, capture_output=True, timeout=30)
            if r.returncode != 0 or r.stdout != b"hi\n":
                raise RuntimeError(f"linewire run failed: {r.stderr!r}")
            if i >= 2:  # the first runs warm caches
                times.append(time.monotonic() - t0)
    finally:
        a.teardown()
    return times


def spread(values):
    return f"{min(values):.2f}–{max(values):.2f}" if len(values) > 1 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the CPU measurements")
    ap.add_argument("--spawn-runs", type=int, default=200)
    ap.add_argument("--run-runs", type=int, default=40)
    ap.add_argument("--only", default="cpu,spawn,run")
    ap.add_argument("--paho-lib", help="a folder with another libpaho-mqtt3as.so.1 (say, one "
                    "built with PAHO_HIGH_PERFORMANCE): its floor is measured too")
    args = ap.parse_args()
    only = args.only.split(",")

    class Ctx:
        pass

    ctx = Ctx()
    ctx.procs = Procs()
    lines = []
    with tempfile.TemporaryDirectory(prefix="linewire-brokers-") as tmp:
        ctx.tmp = tmp
        ctx.floor = build_floor(tmp)
        brokers = {name: Broker(os.path.join(tmp, name), name="mosquitto", extra=extra).start()
                   for name, extra in SETTINGS.items()}
        try:
            if "cpu" in only:
                # cpu[(setting, qos, who)] = [µs per line, one per round]; the rounds
                # interleave settings and publishers so that load from elsewhere spreads.
                cpu = {}
                for r in range(args.repeat):
                    for name, b in brokers.items():
                        for qos in (0, 1):
                            whos = [("mosquitto_pub", cpu_mosquitto_pub), ("floor", cpu_floor),
                                    ("linewired", cpu_agent)]
                            if args.paho_lib:
                                whos.append(("other floor", lambda c, b, q, n: cpu_floor(
                                    c, b, q, n, args.paho_lib)))
                            for who, f in whos:
                                us = f(ctx, b, qos, args.lines) * 1e6
                                cpu.setdefault((name, qos, who), []).append(us)
                                print(f"round {r + 1} {name} QoS {qos} {who}: {us:.2f} µs/line",
                                      file=sys.stderr, flush=True)
                for name in brokers:
                    for qos in (0, 1):
                        got = {w: cpu[(name, qos, w)] for w in ("mosquitto_pub", "floor", "linewired")}
                        vs_pub = [a / p for a, p in zip(got["linewired"], got["mosquitto_pub"])]
                        vs_floor = [a / f for a, f in zip(got["linewired"], got["floor"])]
                        floor_pub = [f / p for f, p in zip(got["floor"], got["mosquitto_pub"])]
                        med = {w: statistics.median(v) for w, v in got.items()}
                        lines.append(
                            f"| CPU per line, {name}, QoS {qos} (median of {args.repeat}): "
                            f"mosquitto_pub -l / Paho C floor / linewired | "
                            f"{med['mosquitto_pub']:.2f} / {med['floor']:.2f} / "
                            f"{med['linewired']:.2f} µs | linewired "
                            f"{statistics.median(vs_pub):.2f}× mosquitto_pub ({spread(vs_pub)}), "
                            f"{statistics.median(vs_floor):.2f}× the floor ({spread(vs_floor)}); "
                            f"floor {statistics.median(floor_pub):.2f}× mosquitto_pub |")
                        if args.paho_lib:
                            other = cpu[(name, qos, "other floor")]
                            lines.append(
                                f"| CPU per line, {name}, QoS {qos}: Paho C floor with "
                                f"{args.paho_lib} (median of {args.repeat}) | "
                                f"{statistics.median(other):.2f} µs | "
                                f"{statistics.median(other) / med['floor']:.2f}× Debian's floor, "
                                f"{statistics.median(other) / med['mosquitto_pub']:.2f}× "
                                "mosquitto_pub |")
            if "spawn" in only:
                for separate in (False, True):
                    p50 = {}
                    for name, b in brokers.items():
                        t = spawn_rtt(ctx, b, args.spawn_runs, separate)
                        p50[name] = pct(t, 50)
                        who = ("request from a second plain client" if separate
                               else "its own request, QoS 1")
                        lines.append(
                            f"| spawn round trip, plain QoS 1 subscriber, {who}, {name} "
                            f"(p50 / p90, {args.spawn_runs} runs) | {pct(t, 50) * 1e3:.1f} / "
                            f"{pct(t, 90) * 1e3:.1f} ms | "
                            + (f"{p50['stock'] / p50['nodelay']:.2f}× nodelay |"
                               if name == "nodelay" else " |"))
            if "run" in only:
                med = {}
                for name, b in brokers.items():
                    t = run_rtt(ctx, b, args.run_runs)
                    med[name] = statistics.median(t)
                    lines.append(f"| `linewire run --no-stdin DEVICE echo`, {name} (median / p90 / "
                                 f"min, {args.run_runs} runs) | {med[name] * 1e3:.1f} / "
                                 f"{pct(t, 90) * 1e3:.1f} / {min(t) * 1e3:.1f} ms | "
                                 + (f"stock {med['stock'] / med['nodelay']:.2f}× nodelay |"
                                    if name == "nodelay" else " |"))
        finally:
            ctx.procs.stop_all()
            for b in brokers.values():
                b.kill()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, {args.lines:,} lines\n")
    print("| measurement | result | ratio |\n|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
