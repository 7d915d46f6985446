#!/usr/bin/python3
"""Fan-out results at fleet scale (issue 18): N linewired agents (default 200) on one
private mosquitto, all in one group. Times `linewire run --all uptime` and
`run --group G uptime`, each with and without `--json` (p50/p99 over --repeat runs,
checking that every run's exit status is 0 and that it reports every device), and one
`run --group G --batch 20` rollout, whose largest number of runs at once is taken from
the runs' own started/ended times. Every process it starts is stopped at the end.

    LINEWIRED=build/linewired LINEWIRE=build/cli/linewire bench/fanout.py [--agents 200]
        [--repeat 10] [--batch 20]
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from fleet import LINEWIRE, Fleet, lw  # noqa: E402
from harness import Broker  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def most_at_once(finals):
    t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    events = sorted([(t(f["started"]), 1) for f in finals] + [(t(f["ended"]), -1) for f in finals])
    n = best = 0
    for _, d in events:
        n += d
        best = max(best, n)
    return best


def check(r, n, as_json):
    if r.returncode != 0:
        return False
    if as_json:
        docs = [json.loads(line) for line in r.stdout.decode().splitlines()]
        s = docs[-1].get("summary", {})
        return s.get("ok") == n and s.get("exit_status") == 0 and \
            sum(1 for d in docs if "final" in d) == n
    return len(r.stdout.decode(errors="replace").splitlines()) == n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()
    for path in (LINEWIRE, os.environ.get("LINEWIRED", "")):
        if not os.path.exists(path):
            sys.exit(f"not found: {path!r} (set LINEWIRED and LINEWIRE)")
    tmp = tempfile.TemporaryDirectory(prefix="lwfanout-")
    broker = Broker(os.path.join(tmp.name, "broker"), name="mosquitto",
                    extra=["set_tcp_nodelay true"]).start()
    fleet = Fleet(tmp.name, [broker.url], args.agents, prefix="lwfanout", log_level="warn")
    n = args.agents
    group = fleet.group("all")
    try:
        watch = fleet.watcher(broker.port)
        t0 = time.monotonic()
        for i, a in enumerate(fleet.agents):
            a.start()
            if (i + 1) % 25 == 0:
                time.sleep(0.2)
        fleet.wait_online(watch)
        print(f"# linewire fan-out bench: {n} agents, {os.cpu_count()} CPUs, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; started in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
        time.sleep(2)
        lw(broker.url, fleet.prefix, "run", "--all", "uptime")  # warm-up
        for target in (["--all"], ["--group", group]):
            for extra in ([], ["--json"]):
                times, bad = [], 0
                for _ in range(args.repeat):
                    t = time.monotonic()
                    r = lw(broker.url, fleet.prefix, "run", *target, *extra, "uptime", timeout=120)
                    times.append(time.monotonic() - t)
                    bad += not check(r, n, bool(extra))
                print(f"run {' '.join(target[:1] + extra)} uptime over {n} devices: "
                      f"p50 {pct(times, 50):.3f}s p99 {pct(times, 99):.3f}s ({len(times)} runs, "
                      f"{bad} wrong; load average {open('/proc/loadavg').read().split()[0]})",
                      flush=True)
        t = time.monotonic()
        r = lw(broker.url, fleet.prefix, "run", "--group", group, "--batch", str(args.batch),
               "--json", "uptime", timeout=300)
        took = time.monotonic() - t
        docs = [json.loads(line) for line in r.stdout.decode().splitlines()]
        finals = [d["final"] for d in docs if "final" in d]
        print(f"run --group --batch {args.batch} --json uptime over {n} devices: {took:.2f}s, "
              f"exit {r.returncode}, {len(finals)} finished, at most {most_at_once(finals)} at once "
              f"(from the runs' started/ended)", flush=True)
    finally:
        problems = fleet.stop()
        broker.stop()
        tmp.cleanup()
        for p in problems[:5]:
            print("teardown:", p)


if __name__ == "__main__":
    main()
