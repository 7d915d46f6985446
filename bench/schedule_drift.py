#!/usr/bin/python3
"""Drift of `every` (SPEC §5) over a long run, on a private mosquitto.

The agent runs `/bin/true` every --period seconds for --duration seconds. Tick n is due
n periods after the agent's start plus its own random delay of up to 10 % of a period, so
each run's `started` (from its `running` state, millisecond wall-clock) minus
start + n × period (its lateness) lies in [0, 10 %) of a period plus the cost of starting
a process, for every n, if the schedule does not drift. A schedule that re-armed from the
previous tick would instead add each tick's delay to all later ones (5 % of a period per
tick on average: 3 minutes over an hour of 10 s ticks).

Printed: the lateness's minimum and maximum over the first and the last tenth of the ticks,
and the least-squares slope of the lateness against time (drift, ms per hour).

    LINEWIRED=build/linewired bench/schedule_drift.py                 # an hour, 10 s period
    LINEWIRED=build/linewired bench/schedule_drift.py --short         # a minute, 1 s period
    LINEWIRED=build/linewired bench/schedule_drift.py --duration 600  # ten minutes

Loopback only; the broker and agent it starts are stopped at the end.
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

from harness import Agent, Broker, Client  # noqa: E402


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def slope(xs, ys):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--period", type=float, default=10.0, help="seconds between ticks")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds to measure")
    p.add_argument("--short", action="store_true", help="1 s period for 60 s")
    args = p.parse_args()
    if args.short:
        args.period, args.duration = 1.0, 60.0

    with tempfile.TemporaryDirectory(prefix="lw-drift-") as tmp:
        broker = Broker(os.path.join(tmp, "broker")).start()
        agent = Agent(os.path.join(tmp, "agent"), broker,
                      commands={"tick": {"exec": ["/bin/true"], "every": f"{args.period}s"}})
        client = Client(broker.port, base=agent.base, prefix=agent.prefix, name="drift")
        starts = []
        try:
            client.subscribe(f"{agent.base}/info")
            client.subscribe(f"{agent.base}/run/+/state", retained=False)
            agent.start(args=("--log-level", "warn"))
            info = client.wait_msg(f"{agent.base}/info", lambda m: m.payload).json()
            began = parse_time(info["started"])
            deadline = time.monotonic() + args.duration + args.period * 0.5
            while time.monotonic() < deadline:
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            for m in client.snapshot(f"{agent.base}/run/+/state"):
                if m.payload:
                    doc = m.json()
                    if doc["state"] == "running":
                        starts.append(parse_time(doc["started"]))
        finally:
            client.close()
            agent.stop()
            broker.stop()

    starts.sort()
    if len(starts) < 10:
        sys.exit(f"only {len(starts)} ticks seen; expected {int(args.duration / args.period)}")
    # Tick n (1-based) is the n-th run; its lateness against the ideal time.
    late = [(t - (began + (n + 1) * args.period)) * 1000 for n, t in enumerate(starts)]
    tenth = max(1, len(late) // 10)
    first, last = late[:tenth], late[-tenth:]
    drift = slope([t - began for t in starts], late) * 3600  # ms per hour
    expected = int(args.duration / args.period)
    print(json.dumps({
        "period_s": args.period, "duration_s": args.duration, "ticks": len(starts),
        "ticks_expected": expected,
        "lateness_ms_first_tenth": [round(min(first), 1), round(max(first), 1)],
        "lateness_ms_last_tenth": [round(min(last), 1), round(max(last), 1)],
        "jitter_bound_ms": args.period * 100,
        "drift_ms_per_hour": round(drift, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
