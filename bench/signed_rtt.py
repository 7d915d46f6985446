#!/usr/bin/python3
"""The round trip a signature adds to `linewire run` (SPEC §11), for bench/README.md:
one private mosquitto, one linewired trusting a fresh key (auth.require off, so the
same command takes both), and N runs of `linewire run DEVICE echo` alternating unsigned
and `--key`-signed, timed from the client's start to its exit.

  LINEWIRED=build/linewired LINEWIRE=build/cli/linewire /usr/bin/python3 bench/signed_rtt.py [N]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import Agent, Broker  # noqa: E402

LINEWIRE = os.environ.get("LINEWIRE", "build/cli/linewire")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "alice.pem")
        subprocess.run([LINEWIRE, "keygen", key], check=True, capture_output=True)
        broker = Broker(os.path.join(d, "broker"), extra=["set_tcp_nodelay true"]).start()
        agent = Agent(os.path.join(d, "agent"), broker,
                      {"echo": {"exec": ["/bin/echo", "hi"]}},
                      config={"auth": {"keys": {"alice": {"file": key + ".pub"}}}})
        agent.start(args=("--log-level", "warn"))
        base = [LINEWIRE, "--broker", broker.url, "--prefix", agent.prefix]
        times = {"unsigned": [], "signed": []}
        try:
            for i in range(n + 2):
                for kind in ("unsigned", "signed"):
                    extra = ["--key", key] if kind == "signed" else []
                    t0 = time.monotonic()
                    r = subprocess.run(base + extra + ["run", "--no-stdin", agent.device, "echo"],
                                       capture_output=True, timeout=30)
                    dt = (time.monotonic() - t0) * 1000
                    assert r.returncode == 0 and r.stdout == b"hi\n", r.stderr
                    if i >= 2:  # the first runs warm caches
                        times[kind].append(dt)
        finally:
            for c in agent.clients:
                c.close()
            agent.stop()
            broker.kill()
    print(f"linewire run, {n} each, alternating (ms): median / p90 / min")
    for kind, ts in times.items():
        ts.sort()
        print(f"  {kind:9} {statistics.median(ts):6.1f} / {ts[int(0.9 * len(ts)) - 1]:6.1f} / "
              f"{ts[0]:6.1f}")
    added = statistics.median(times["signed"]) - statistics.median(times["unsigned"])
    print(f"  added by signing (median difference): {added:+.1f} ms")


if __name__ == "__main__":
    main()
