#!/usr/bin/python3
"""Output history and replay (SPEC §12), measured in one run on a private mosquitto:

  memory   RssAnon of an idle agent, then with --runs finished runs each holding a full
           256 KiB history (limits.history raised to hold them all): the growth against
           what the histories hold (expect ~1x: nothing else grows).
  replay   200,000 lines streamed live to one QoS 0 mosquitto_sub (start request to
           its last line), then the same lines replayed to it (replay request to its
           last line): replay rate / live rate.
  cpu      agent CPU per streamed line (`seq --lines`, QoS 0), history: 0 against the
           default 256 KiB, three runs each, the median: the cost of history on the hot
           path (goal <= 1.1x).
  watch    `linewire watch DEVICE RUN` of a finished --watch-lines run: time to its last
           line and exit.

    LINEWIRED=build/linewired LINEWIRE=build/cli/linewire bench/history.py [--quick]

Loopback only; every process it starts is stopped at the end.
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
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402

from harness import Agent, Broker, unique  # noqa: E402
from procfs import cpu_seconds, status  # noqa: E402

MIB = 1024 * 1024
LINEWIRE = os.environ.get("LINEWIRE", os.path.join(HERE, "..", "build", "cli", "linewire"))


class Counter:
    """Counts messages per topic prefix; remembers the first and last arrival."""

    def __init__(self, port, topics):
        self.c = mqtt.Client(client_id=unique("hb"), protocol=mqtt.MQTTv5)
        self.cond = threading.Condition()
        self.count = {}
        self.first = {}
        self.last = {}
        self.payload = {}
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        for t in topics:
            self.c.subscribe(t, qos=0)
        time.sleep(0.3)

    def _on_message(self, client, userdata, m):
        now = time.monotonic()
        with self.cond:
            self.count[m.topic] = self.count.get(m.topic, 0) + 1
            self.first.setdefault(m.topic, now)
            self.last[m.topic] = now
            self.payload[m.topic] = m.payload
            self.cond.notify_all()

    def wait(self, pred, timeout=120):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise RuntimeError("timed out")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def start_agent(tmp, broker, commands, config=None):
    cfg = {"log_level": "warn", "qos": 0, "keep_runs": 200}
    cfg.update(config or {})
    a = Agent(os.path.join(tmp, unique("agent")), broker, commands=commands, config=cfg,
              prefix="hb")
    a.start(args=("--log-level", "warn"))
    return a


def run_and_wait(a, sub, command, rid):
    state = f"hb/{a.device}/run/{rid}/state"
    sub.c.publish(f"hb/{a.device}/cmd/{command}/start", json.dumps({"id": rid}), qos=1)
    sub.wait(lambda: state in sub.payload and b'"running"' not in sub.payload[state])


def bench_memory(tmp, broker, runs):
    # 256 KiB of 100-byte lines: 256 KiB / 132 = 1985 lines fill a run's history.
    line = "x" * 99
    cmd = {"exec": ["/bin/sh", "-c", f"i=0; while [ $i -lt 2100 ]; do echo {line}; i=$((i+1)); done"]}
    a = start_agent(tmp, broker, {"fill": cmd}, {"limits": {"history": f"{runs}MiB"}})
    sub = Counter(broker.port, [f"hb/{a.device}/run/+/state"])
    time.sleep(1)
    idle = status(a.proc.pid)["RssAnon"]
    for i in range(runs):
        run_and_wait(a, sub, "fill", f"m{i}")
    time.sleep(1)
    full = status(a.proc.pid)["RssAnon"]
    kept = runs * 256 * 1024
    sub.close()
    a.stop()
    return idle, full, kept


def counted(port, topic, lines):
    """mosquitto_sub taking `lines` messages of `topic` (a C subscriber: the paho one in
    Python is slower than the agent), started and subscribed."""
    p = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", topic, "-C", str(lines), "-q", "0",
                          "-V", "mqttv5"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def bench_replay(tmp, broker, lines):
    """The same lines live (start request to the last one at the subscriber) and replayed
    (replay request to the last one), each to one mosquitto_sub."""
    a = start_agent(tmp, broker, {"seq": {"exec": ["/usr/bin/seq", str(lines)], "history": "64MiB"}},
                    {"limits": {"history": "64MiB"}})
    rt = "hb/_client/bench/replay"
    sub = Counter(broker.port, [f"hb/{a.device}/run/+/state", rt])
    live_sub = counted(broker.port, f"hb/{a.device}/run/live/out", lines)
    t = time.monotonic()
    sub.c.publish(f"hb/{a.device}/cmd/seq/start", json.dumps({"id": "live"}), qos=1)
    live_sub.wait(timeout=300)
    live = time.monotonic() - t
    state = f"hb/{a.device}/run/live/state"
    sub.wait(lambda: state in sub.payload and b'"running"' not in sub.payload[state])
    replay_sub = counted(broker.port, f"{rt}/out", lines)
    t = time.monotonic()
    sub.c.publish(f"hb/{a.device}/run/live/replay", json.dumps({"reply_to": rt}), qos=1)
    replay_sub.wait(timeout=300)
    replay = time.monotonic() - t
    sub.wait(lambda: rt in sub.payload)
    got = json.loads(sub.payload[rt])["out"]["last"]
    sub.close()
    a.stop()
    return live, replay, got


def bench_cpu(tmp, broker, lines, history):
    a = start_agent(tmp, broker, {"seq": {"exec": ["/usr/bin/seq", str(lines)], "history": history}})
    sub = Counter(broker.port, [f"hb/{a.device}/run/+/state"])
    per_line = []
    for i in range(3):
        before = cpu_seconds([a.proc.pid])
        run_and_wait(a, sub, "seq", f"c{i}")
        per_line.append((cpu_seconds([a.proc.pid]) - before) / lines)
    sub.close()
    a.stop()
    return statistics.median(per_line)


def bench_watch(tmp, broker, lines):
    a = start_agent(tmp, broker, {"seq": {"exec": ["/usr/bin/seq", str(lines)], "history": "1MiB"}})
    sub = Counter(broker.port, [f"hb/{a.device}/run/+/state"])
    run_and_wait(a, sub, "seq", "w")
    sub.close()
    times = []
    for _ in range(3):
        t = time.monotonic()
        r = subprocess.run([LINEWIRE, "--broker", broker.url, "--prefix", "hb", "watch", a.device,
                            "w"], capture_output=True, timeout=120)
        times.append(time.monotonic() - t)
        assert r.stdout.count(b"\n") == lines, (r.stdout[-200:], r.stderr)
    a.stop()
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller numbers (CI)")
    args = ap.parse_args()
    runs, lines, cpu_lines, watch_lines = (100, 200000, 200000, 10000)
    if args.quick:
        runs, lines, cpu_lines, watch_lines = (10, 20000, 20000, 10000)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(os.path.join(tmp, "broker"), name="mosquitto").start()
        try:
            idle, full, kept = bench_memory(tmp, broker, runs)
            live, replay, got = bench_replay(tmp, broker, lines)
            cpu0 = bench_cpu(tmp, broker, cpu_lines, 0)
            cpu1 = bench_cpu(tmp, broker, cpu_lines, "256KiB")
            watch = bench_watch(tmp, broker, watch_lines)
        finally:
            broker.kill()
    print("| measure | value | ratio |")
    print("|---|---|---|")
    print(f"| RssAnon idle / with {runs} full histories | {idle / MIB:.1f} / {full / MIB:.1f} MiB "
          f"| growth {(full - idle) / MIB:.1f} MiB for {kept / MIB:.1f} MiB kept: "
          f"{(full - idle) / kept:.2f}x |")
    print(f"| {lines} lines live (first to last) / replayed ({got} lines) | {live:.2f} s / "
          f"{replay:.2f} s | replay rate {live / replay:.2f}x live |")
    print(f"| agent CPU per line, history 0 / 256 KiB | {cpu0 * 1e6:.2f} / {cpu1 * 1e6:.2f} µs "
          f"| {cpu1 / cpu0:.2f}x |")
    print(f"| `linewire watch` of a finished {watch_lines}-line run | {watch:.2f} s | |")


if __name__ == "__main__":
    main()
