#!/usr/bin/python3
"""The cost of a fleet (issue 9): N linewired agents (default 200) on one private
mosquitto. Measures per-agent memory (RssAnon, Pss from /proc/PID/smaps_rollup), the
broker traffic of idle agents ($SYS counters and a `#` subscriber), `linewire run --all`
completion times over 50, 100 and N devices, and the spread of reconnects after a broker
restart. Bounded in time (about 3-4 minutes for 200 agents); every process it starts is
stopped at the end, also on Ctrl-C or an error.

    LINEWIRED=build/linewired LINEWIRE=build/cli/linewire bench/fleet.py [--agents 200]
        [--keepalive 10] [--idle 30] [--repeat 20]
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from fleet import LINEWIRE, Fleet, lw  # noqa: E402
from harness import Broker, Client  # noqa: E402
from procfs import cpu_seconds  # noqa: E402


def kib(pid, path, key):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(fleet):
    rows = []
    for a in fleet.agents:
        pid = a.pid
        rows.append({"rss_anon": kib(pid, "status", "RssAnon"), "vm_rss": kib(pid, "status", "VmRSS"),
                     "pss": kib(pid, "smaps_rollup", "Pss"), "threads": kib(pid, "status", "Threads")})
    return rows


class SysCounters:
    """The broker's $SYS totals (messages/bytes received and sent), newest values."""

    KEYS = ("messages/received", "messages/sent", "bytes/received", "bytes/sent",
            "publish/messages/received")

    def __init__(self, port):
        self.c = Client(port, prefix="$SYS", name="sys")
        for k in self.KEYS:
            self.c.subscribe(f"$SYS/broker/{k}")

    def read(self):
        time.sleep(1.5)  # sys_interval 1: the newest totals
        out = {}
        for k in self.KEYS:
            msgs = self.c.snapshot(f"$SYS/broker/{k}")
            out[k] = int(msgs[-1].payload) if msgs else 0
        return out


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fanout_times(url, prefix, n, repeat, broker_pid, agent_pids):
    """Wall time of each `run --all uptime`, and the CPU seconds that one fan-out costs
    the client, the broker and the agents (mean)."""
    times, bad, client_cpu, broker_cpu, agents_cpu = [], 0, 0.0, 0.0, 0.0
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b0, a0 = cpu_seconds([broker_pid]), cpu_seconds(agent_pids)
        t0 = time.monotonic()
        r = lw(url, prefix, "run", "--all", "uptime", timeout=60)
        times.append(time.monotonic() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu += (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        broker_cpu += cpu_seconds([broker_pid]) - b0
        agents_cpu += cpu_seconds(agent_pids) - a0
        lines = r.stdout.decode(errors="replace").splitlines()
        if r.returncode != 0 or len(lines) != n:
            bad += 1
    return times, bad, (client_cpu / repeat, broker_cpu / repeat, agents_cpu / repeat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--keepalive", type=int, default=10, help="agents' keepalive, seconds")
    ap.add_argument("--idle", type=int, default=30, help="idle window, seconds")
    ap.add_argument("--repeat", type=int, default=20, help="fan-outs per fleet size")
    args = ap.parse_args()
    for path in (LINEWIRE, os.environ.get("LINEWIRED", "")):
        if not os.path.exists(path):
            sys.exit(f"not found: {path!r} (set LINEWIRED and LINEWIRE)")

    tmp = tempfile.TemporaryDirectory(prefix="lwfleet-")
    broker = Broker(os.path.join(tmp.name, "broker"), name="mosquitto",
                    extra=["sys_interval 1", "set_tcp_nodelay true"]).start()
    fleet = Fleet(tmp.name, [broker.url], args.agents, prefix="lwbench", log_level="warn",
                  config={"broker": {"keepalive": f"{args.keepalive}s",
                                     "reconnect": {"min": "1s", "max": "30s"}}})
    report = []

    def say(line=""):
        print(line, flush=True)
        report.append(line)

    try:
        watch = fleet.watcher(broker.port)
        sizes = sorted({s for s in (50, 100, args.agents) if s <= args.agents})
        started = 0
        say(f"# linewire fleet bench: {args.agents} agents, keepalive {args.keepalive}s, "
            f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for size in sizes:
            since = watch.mark()
            t0 = time.monotonic()
            for i, a in enumerate(fleet.agents[started:size]):
                a.start()
                if (i + 1) % 25 == 0:
                    time.sleep(0.2)
            fleet.wait_online(watch, fleet.devices[started:size], since)
            say(f"started {size - started} more agents ({size} in all) in {time.monotonic() - t0:.1f}s")
            started = size
            time.sleep(2)
            lw(broker.url, fleet.prefix, "run", "--all", "uptime")  # warm-up
            times, bad, cpu = fanout_times(broker.url, fleet.prefix, size, args.repeat,
                                           broker.proc.pid, [a.pid for a in fleet.agents[:size]])
            say(f"run --all uptime over {size} devices: p50 {pct(times, 50):.3f}s "
                f"p99 {pct(times, 99):.3f}s max {max(times):.3f}s ({len(times)} runs, {bad} incomplete); "
                f"CPU per fan-out: client {cpu[0]:.3f}s, broker {cpu[1]:.3f}s, agents {cpu[2]:.3f}s "
                f"(load average {open('/proc/loadavg').read().split()[0]})")

        rows = memory(fleet)
        n = len(rows)
        pss = sum(r["pss"] for r in rows)
        say(f"memory of {n} agents: Pss sum {pss / 1024:.1f} MiB; per agent RssAnon mean "
            f"{statistics.mean(r['rss_anon'] for r in rows) / 1024:.2f} MiB max "
            f"{max(r['rss_anon'] for r in rows) / 1024:.2f} MiB, Pss mean {pss / n / 1024:.2f} MiB, "
            f"VmRSS mean {statistics.mean(r['vm_rss'] for r in rows) / 1024:.2f} MiB, "
            f"threads {statistics.mean(r['threads'] for r in rows):.0f}")
        bpid = broker.proc.pid
        say(f"mosquitto with {n} agents connected: RssAnon {kib(bpid, 'status', 'RssAnon') / 1024:.1f} MiB, "
            f"VmRSS {kib(bpid, 'status', 'VmRSS') / 1024:.1f} MiB")

        # Idle traffic: nothing runs; the broker's counters over a window, and a `#`
        # subscriber that sees every PUBLISH under the prefix (pings are not messages).
        sys_counters = SysCounters(broker.port)
        spy = Client(broker.port, prefix=fleet.prefix, name="spy")
        spy.subscribe(f"{fleet.prefix}/#", retained=False)
        time.sleep(2)
        before, mark = sys_counters.read(), spy.mark()
        t0 = time.monotonic()
        time.sleep(args.idle)
        after = sys_counters.read()
        span = time.monotonic() - t0
        published = len(spy.snapshot(since=mark))
        rate = {k: (after[k] - before[k]) / span for k in after}
        per_ka = rate["messages/received"] * args.keepalive / n
        say(f"idle, {n} agents over {span:.0f}s: broker received {rate['messages/received']:.1f} msg/s "
            f"({rate['bytes/received']:.0f} B/s), sent {rate['messages/sent']:.1f} msg/s "
            f"({rate['bytes/sent']:.0f} B/s); {per_ka:.2f} messages per agent per keepalive; "
            f"PUBLISHes under the prefix: {published}")
        spy.close()
        sys_counters.c.close()

        # Broker restart: every agent loses its connection at once.
        broker.stop()
        broker.fixed_port = True  # the agents know this port
        time.sleep(3)
        broker.start()
        back = time.monotonic()
        since = watch.mark()
        fleet.wait_online(watch, since=since, timeout=120)
        first = {}
        for m in watch.snapshot(f"{fleet.prefix}/+/status", since):
            if m.payload == b"online":
                first.setdefault(m.topic, m.time - back)
        t = sorted(first.values())
        per_s = {}
        for v in t:
            per_s[int(v)] = per_s.get(int(v), 0) + 1
        say(f"broker restart (down 3s): {len(t)} agents back online from {t[0]:.2f}s to {t[-1]:.2f}s "
            f"after it came back (p50 {pct(t, 50):.2f}s, p90 {pct(t, 90):.2f}s); "
            f"most in one second: {max(per_s.values())}")
    finally:
        problems = fleet.stop(timeout=60)
        broker.kill()
        for p in problems[:5]:
            print("problem:", p, file=sys.stderr)
        tmp.cleanup()


if __name__ == "__main__":
    main()
