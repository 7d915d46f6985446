"""Issue 3, leaks (SPEC §5: no zombies, no leaked descriptors, ever): 5,000 sequential
runs (pipelined: a window of 50 starts in flight) and 500 concurrent runs. Afterwards
no zombies, and the agent's open fds and RSS are back near their baseline. The figures
are printed with a `FIGURE` prefix."""

import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(__file__))

from harness import SLOWDOWN, unique  # noqa: E402
from procfs import children, status, zombie_children  # noqa: E402

FINAL = (b'"exited"', b'"killed"', b'"failed"', b'"lost"')


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class StateCounter:
    """Counts final and running states on {base}/run/+/state (a raw paho client: the
    harness client keeps every message, too slow for thousands of runs)."""

    def __init__(self, port, base):
        self.finals, self.running = {}, set()
        self.cond = threading.Condition()
        self.c = mqtt.Client(client_id=unique("cnt"), protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(f"{base}/run/+/state", qos=1)
        time.sleep(0.3)

    def _on_message(self, client, userdata, m):
        p = bytes(m.payload)
        if not p:
            return
        rid = m.topic.split("/")[-2]
        with self.cond:
            if any(s in p for s in FINAL):
                self.finals[rid] = json.loads(p)
            elif b'"running"' in p:
                self.running.add(rid)
            self.cond.notify_all()

    def wait(self, pred, timeout, what):
        with self.cond:
            assert self.cond.wait_for(pred, timeout), f"timed out waiting for {what}"

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def settle(a, baseline_fds, seconds=10 * SLOWDOWN):
    """Waits (bounded) for the fd count to come back down; returns the last figures."""
    deadline = time.monotonic() + seconds
    while True:
        n = fds(a.pid)
        if n <= baseline_fds or time.monotonic() > deadline:
            return n, status(a.pid)
        time.sleep(0.2)


def publisher(port):
    """A raw paho client for many quick publishes (no limit on its queue)."""
    pub = mqtt.Client(client_id=unique("pub"), protocol=mqtt.MQTTv5)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    return pub


def _start_many(pub, base, command, ids):
    for rid in ids:
        pub.publish(f"{base}/cmd/{command}/start", json.dumps({"id": rid}), qos=1)


def test_5000_sequential_runs(agent):
    a = agent(commands={"t": {"exec": ["/bin/true"]}}, config={"limits": {"max_runs": 64}})
    cnt = StateCounter(a.broker.port, a.base)
    pub = publisher(a.broker.port)
    try:
        def batch(n, window=50):
            ids = [unique("s") for _ in range(n)]
            start_count = len(cnt.finals)
            sent = 0
            while sent < n:
                with cnt.cond:
                    done = len(cnt.finals) - start_count
                k = min(n - sent, done + window - sent)
                if k > 0:
                    _start_many(pub, a.base, "t", ids[sent:sent + k])
                    sent += k
                else:
                    with cnt.cond:
                        cnt.cond.wait(0.5)
                assert a.proc.poll() is None, "the agent died"
            cnt.wait(lambda: len(cnt.finals) - start_count >= n, 60 * SLOWDOWN,
                     f"{n} runs to end (sent {sent}, finals {len(cnt.finals) - start_count}, "
                     f"running {len(cnt.running)})")
            return ids

        batch(200)  # warm up: pools, the keep_runs window, Paho's buffers
        time.sleep(1.5)
        base_fds, base_rss = fds(a.pid), status(a.pid)
        t0 = time.monotonic()
        ids = batch(5000)
        took = time.monotonic() - t0
        bad = [s for r, s in cnt.finals.items() if r in set(ids) and
               (s.get("state") != "exited" or s.get("exit_code") != 0)]
        time.sleep(1.5)
        n_fds, after = settle(a, base_fds)
        zombies = zombie_children(a.pid)
        print(f"FIGURE 5000 sequential runs in {took:.1f}s ({5000 / took:.0f}/s, window 50): "
              f"fds {base_fds} -> {n_fds}; VmRSS {base_rss['VmRSS'] / 2**20:.1f} -> "
              f"{after['VmRSS'] / 2**20:.1f} MiB, RssAnon {base_rss['RssAnon'] / 2**20:.1f} -> "
              f"{after['RssAnon'] / 2**20:.1f} MiB; zombies {len(zombies)}", flush=True)
        assert not bad, f"{len(bad)} runs did not exit 0, e.g. {bad[:3]}"
        assert not zombies, f"zombies: {zombies}"
        assert n_fds <= base_fds, f"fd leak: {base_fds} -> {n_fds}"
        assert after["RssAnon"] <= base_rss["RssAnon"] + 4 * 2**20, "RSS grew by more than 4 MiB"
    finally:
        pub.disconnect()
        pub.loop_stop()
        cnt.close()


def test_500_concurrent_runs(agent, prog):
    gate = prog("gate.sh", "read x\necho $x\n")
    a = agent(commands={"g": {"exec": [gate]}, "t": {"exec": ["/bin/true"]}},
              config={"limits": {"max_runs": 600}})
    c = a.client()
    cnt = StateCounter(a.broker.port, a.base)
    pub = publisher(a.broker.port)
    try:
        for _ in range(20):
            c.run("t")
        time.sleep(1.5)
        base_fds, base_rss = fds(a.pid), status(a.pid)
        rounds = []
        for round_ in (1, 2, 3):
            ids = [unique("p") for _ in range(500)]
            t0 = time.monotonic()
            _start_many(pub, a.base, "g", ids)
            cnt.wait(lambda: len(cnt.running & set(ids)) >= 500, 60 * SLOWDOWN, "500 runs running")
            took = time.monotonic() - t0
            live = len(children(a.pid))
            peak_fds, peak_rss = fds(a.pid), status(a.pid)
            assert live == 500, f"{live} children while 500 runs are running"
            # each run holds 3 pipes + a pidfd at most
            for rid in ids:
                pub.publish(f"{a.base}/run/{rid}/in", b"bye", qos=1)
            cnt.wait(lambda: len(set(cnt.finals) & set(ids)) >= 500, 60 * SLOWDOWN, "500 runs to end")
            bad = [cnt.finals[r] for r in ids if cnt.finals[r].get("state") != "exited"
                   or cnt.finals[r].get("exit_code") != 0 or cnt.finals[r].get("lines") != 1]
            time.sleep(1.5)
            n_fds, after = settle(a, base_fds)
            zombies = zombie_children(a.pid)
            print(f"FIGURE 500 concurrent runs (round {round_}) started in {took:.1f}s: fds {base_fds} -> peak "
                  f"{peak_fds} -> {n_fds}; RssAnon {base_rss['RssAnon'] / 2**20:.1f} -> peak "
                  f"{peak_rss['RssAnon'] / 2**20:.1f} -> {after['RssAnon'] / 2**20:.1f} MiB, VmRSS "
                  f"{base_rss['VmRSS'] / 2**20:.1f} -> {after['VmRSS'] / 2**20:.1f} MiB; zombies "
                  f"{len(zombies)}; children left {len(children(a.pid))}", flush=True)
            assert not bad, f"{len(bad)} runs ended badly, e.g. {bad[:3]}"
            assert not zombies, f"zombies: {zombies}"
            assert not children(a.pid)
            assert n_fds <= base_fds, f"fd leak: {base_fds} -> {n_fds}"
            rounds.append(after)
        # glibc keeps the heap of a round's peak (it does not trim it), and the second
        # round's peak is higher (its runs spread over more of Paho's and our threads'
        # arenas): measured here 9.6, 12.0, 12.1, 12.1, 12.2 MiB after five rounds. A leak
        # grows with every round, a high-water mark not.
        mib = [r["RssAnon"] / 2**20 for r in rounds]
        print(f"FIGURE 500 concurrent runs: RssAnon after rounds 1-3: "
              f"{', '.join(f'{m:.1f}' for m in mib)} MiB", flush=True)
        # The plateau (~12 MiB) is reached in round 2 or in round 3; a leak of 4 KiB per
        # run adds 2 MiB every round on top of it.
        assert mib[2] - mib[0] <= 4, f"RssAnon grew {mib[2] - mib[0]:.1f} MiB over three rounds"
        assert mib[2] - mib[1] <= 2, f"RssAnon grew {mib[2] - mib[1]:.1f} MiB in round 3: a leak"
        assert c.run("t").final["exit_code"] == 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        cnt.close()
