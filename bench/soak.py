#!/usr/bin/python3
"""Soak: one linewired for --minutes (default 30) under a steady mix, watched for growth.

The mix, each on its own period:
  - a run every 100 ms (--run-every): short commands, some with output (1 or 5 lines,
    a stderr line and exit 3, stdin, a timeout kill), one in ten for 0.2 s;
  - a broker restart every 60 s (--restart-every): mosquitto stopped and started again
    on the same port; the agent reconnects by itself;
  - a SIGHUP every 45 s (--hup-every): the config alternates between two versions (a
    command added and removed, a changed group), so every reload changes something;
  - a flood of malformed messages every 30 s (--flood-every): bad JSON, wrong types,
    oversize payloads, bad names, retained requests, random bytes on request topics.

Every 10 s (--sample-every) it samples the agent: VmRSS and RssAnon, open fds, threads
(the lowest of ten reads over one second, so a run's pipes of that instant do not
count), live children, and zombies (children that are zombies in two reads 0.2 s apart:
one the agent has not reaped yet is not a leak). It fails (exit 1) if, after the
plateau (the first minute, or longer when a period is longer: every kind of event has
happened once in it), a sample grows past the plateau's maximum plus a small margin
(VmRSS and RssAnon: 1 MiB or 10 %, the larger; fds: 2; threads: 0), if a zombie is seen,
if a run ends other than its command does, or if the agent dies. It writes every sample
to CSV and a markdown summary.

    LINEWIRED=build/linewired bench/soak.py [--minutes 30] [--out bench/results/soak]

Only loopback; every process it starts is stopped at the end, also on Ctrl-C.
"""

import argparse
import csv
import datetime
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402

from harness import Agent, Broker, unique  # noqa: E402
from procfs import children, processes, status  # noqa: E402

MIB = 1024 * 1024
MAX_PAYLOAD = 65536


# --------------------------------------------------------------------------- the mix

def commands(variant):
    """The agent's commands; `variant` 0 or 1 (the SIGHUP alternates them)."""
    cmds = {
        "true": {"exec": ["/bin/true"]},
        "echo": {"exec": ["/bin/echo"], "args": {"pattern": "[a-z0-9]{1,8}", "max": 2}},
        "lines": {"exec": ["/usr/bin/printf", "one\\ntwo\\nthree\\nfour\\nfive\\n"]},
        "err": {"exec": ["/bin/sh", "-c", "echo oops >&2; exit 3"]},
        "head": {"exec": ["/usr/bin/head", "-n", "1"]},
        "slow": {"exec": ["/bin/sh", "-c", "sleep 0.2; echo done"]},
        "hang": {"exec": ["/bin/sleep", "30"], "kill_grace": "1s"},
    }
    if variant:
        cmds["extra"] = {"exec": ["/bin/echo", "extra"]}
        cmds["echo"]["args"]["max"] = 3
    return cmds


# (command, start fields, expected final: (state, exit_code or reason, lines))
MIX = [
    ("true", {}, ("exited", 0, 0)),
    ("echo", {"args": ["hello"]}, ("exited", 0, 1)),
    ("lines", {}, ("exited", 0, 5)),
    ("err", {}, ("exited", 3, 0)),
    ("echo", {"args": ["a", "b"]}, ("exited", 0, 1)),
    ("true", {}, ("exited", 0, 0)),
    ("head", {"stdin": "first\nsecond\n"}, ("exited", 0, 1)),
    ("slow", {}, ("exited", 0, 1)),
    ("lines", {}, ("exited", 0, 5)),
    ("hang", {"timeout": 0.1}, ("killed", "timeout", 0)),
]


def flood_messages(rng, base, prefix):
    """One flood: (topic, payload, retain) tuples, none of them a valid request."""
    # unknown or bad command names (a real command's start or stop would be a request)
    names = ["nope", "x" * 65, "..", "a b", "ünï", "$SYS", "-dash", "a..b", "\u202e", "x/y"]
    runs = ["nope", "x" * 65, "..", "a b", "\u200b"]
    msgs = []
    bad_json = [b"{", b"[1,2]", b"null", b"\"str\"", b"{\"args\": 5}", b"{\"id\": 7}",
                b"{\"id\": \"a/b\"}", b"{\"timeout\": \"soon\"}", b"{\"stdin\": [1]}",
                b"{\"args\": [\"../../etc\"]}", b"{\"id\": \"" + b"x" * 70 + b"\"}",
                b"{}\x00", b"\xff\xfe{", b"[" * 5000, b"{\"a\":" * 3000]
    for p in bad_json:
        msgs.append((f"{base}/cmd/echo/start", p, False))
    for _ in range(3):  # oversize
        msgs.append((f"{base}/cmd/echo/start",
                     json.dumps({"stdin": "y" * (MAX_PAYLOAD + rng.randint(1, 8000))}).encode(), False))
        msgs.append((f"{base}/run/nope/in", b"z" * (MAX_PAYLOAD + 1), False))
    for n in names:  # bad names, unknown commands
        for leaf in ("start", "stop", "switch"):
            msgs.append((f"{base}/cmd/{n}/{leaf}", b"{}" if leaf == "start" else b"junk", False))
        msgs.append((f"{prefix}/_group/nogroup/cmd/{n}/start", b"{}", False))
    for c in ("true", "echo"):  # real commands: a switch payload that is neither ON nor OFF
        msgs.append((f"{base}/cmd/{c}/switch", b"on", False))
        msgs.append((f"{base}/cmd/{c}/switch", b"", False))
    for r in runs:
        for leaf in ("in", "eof", "signal"):
            msgs.append((f"{base}/run/{r}/{leaf}", b"KILL" if leaf == "signal" else b"x", False))
    # retained requests: refused, never run (SPEC §3); the broker's restart clears them
    msgs.append((f"{base}/cmd/true/start", b"{}", True))
    msgs.append((f"{base}/cmd/echo/switch", b"ON", True))
    msgs.append((f"{base}/run/nope/signal", b"TERM", True))
    # random bytes on every request topic
    # (never on a real command's stop: any payload stops it, and the mix's runs with it)
    topics = [f"{base}/cmd/{c}/{leaf}" for c in ("true", "echo") for leaf in ("start", "switch")]
    topics += [f"{base}/cmd/nope/{leaf}" for leaf in ("start", "stop", "switch")]
    topics += [f"{base}/run/{r}/{leaf}" for r in ("nope", "r1") for leaf in ("in", "eof", "signal")]
    for _ in range(150):
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
        # never a valid request by chance: blank (an empty start), ON/OFF, a JSON object
        payload = b"\x00" + payload
        msgs.append((rng.choice(topics), payload, False))
    return msgs


# --------------------------------------------------------------------------- observers


class Observer:
    """One raw paho client (the harness client keeps every message: too much for tens
    of thousands of runs): counts final states by run id, follows the agent's status,
    and publishes the requests and floods. Resubscribes after a broker restart."""

    def __init__(self, port, base):
        self.base = base
        self.cond = threading.Condition()
        self.finals = {}
        self.online = False
        self.connected = False
        self.c = mqtt.Client(client_id=unique("soak"), protocol=mqtt.MQTTv5)
        self.c.max_queued_messages_set(0)
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.connect_async("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc != 0:
            return
        client.subscribe([(f"{self.base}/run/+/state", 1), (f"{self.base}/status", 1)])
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:
            self.connected = False
            self.online = False

    def _on_message(self, client, userdata, m):
        p = bytes(m.payload)
        if m.topic.endswith("/status"):
            with self.cond:
                self.online = p == b"online"
                self.cond.notify_all()
            return
        if not p or b'"running"' in p:
            return
        try:
            doc = json.loads(p)
        except ValueError:
            return
        with self.cond:
            self.finals[doc.get("run")] = doc
            self.cond.notify_all()

    def ready(self):
        with self.cond:
            return self.connected and self.online

    def wait_ready(self, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.connected and self.online, timeout)

    def publish(self, topic, payload, qos=1, retain=False):
        return self.c.publish(topic, payload, qos=qos, retain=retain)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def lasting_zombies(pid):
    """Zombie children of `pid` still there 0.2 s later (not merely not reaped yet)."""
    first = {p for p, f in processes() if int(f[1]) == pid and f[0] == "Z"}
    if not first:
        return []
    time.sleep(0.2)
    return sorted(first & {p for p, f in processes() if int(f[1]) == pid and f[0] == "Z"})


def sample(pid):
    """One sample: the lowest fds and threads of ten reads over a second (a run's pipes
    at that instant are not what the agent holds), memory at the end."""
    fds, thr = [], []
    for _ in range(10):
        fds.append(fd_count(pid))
        thr.append(threads(pid))
        time.sleep(0.1)
    st = status(pid)
    return {"vm_rss_kib": st["VmRSS"] // 1024, "rss_anon_kib": st["RssAnon"] // 1024,
            "fds": min(fds), "fds_max": max(fds), "threads": min(thr),
            "children": len(children(pid)), "zombies": len(lasting_zombies(pid))}


METRICS = ("vm_rss_kib", "rss_anon_kib", "fds", "threads")


def margin(metric, plateau):
    if metric in ("vm_rss_kib", "rss_anon_kib"):
        return max(1024, plateau // 10)
    return {"fds": 2, "threads": 0}[metric]


def judge(samples, plateau_s):
    """(plateau maxima, violations) of the samples: a sample after the plateau above its
    maximum plus the margin, or any zombie."""
    early = [s for s in samples if s["t_s"] <= plateau_s] or samples[:1]
    plateau = {m: max(s[m] for s in early) for m in METRICS}
    bad = []
    for s in samples:
        if s["zombies"]:
            bad.append(f"t={s['t_s']}s: {s['zombies']} zombie(s)")
        if s["t_s"] <= plateau_s:
            continue
        for m in METRICS:
            limit = plateau[m] + margin(m, plateau[m])
            if s[m] > limit:
                bad.append(f"t={s['t_s']}s: {m} {s[m]} > plateau {plateau[m]} + "
                           f"{margin(m, plateau[m])}")
    return plateau, bad


# --------------------------------------------------------------------------- soak


def soak(minutes=30.0, run_every=0.1, restart_every=60.0, hup_every=45.0, flood_every=30.0,
         sample_every=10.0, plateau_s=None, workdir=None, out=None, seed=20261206, log=print):
    """Runs the soak and returns its result: {"samples", "plateau", "violations", "counts",
    "ok"}. `out` (a path without extension): writes out.csv and out.md."""
    if plateau_s is None:
        plateau_s = max(60.0, max(restart_every, hup_every, flood_every) + 2 * sample_every)
    rng = random.Random(seed)
    workdir = workdir or tempfile.mkdtemp(prefix="linewire-soak-")
    broker = Broker(os.path.join(workdir, "broker"), name="mosquitto").start()
    variant = 0
    agent = Agent(os.path.join(workdir, "agent"), broker, commands(variant),
                  config={"groups": ["soak0"], "state_dir": os.path.join(workdir, "state")})
    obs = None
    samples, counts = [], {"runs_requested": 0, "runs_finished": 0, "runs_unexpected": 0,
                           "restarts": 0, "reloads_sent": 0, "floods": 0, "flood_messages": 0}
    expected = {}
    unexpected = []
    problems = []
    t0 = time.monotonic()
    stop_sampling = threading.Event()

    def sampler():
        next_t = t0
        while not stop_sampling.is_set():
            if agent.proc is None or agent.proc.poll() is not None:
                return
            try:
                s = sample(agent.pid)
            except OSError:
                return
            s["t_s"] = round(time.monotonic() - t0)
            with obs.cond:
                finished = len(obs.finals)
            s.update({"runs_requested": counts["runs_requested"], "runs_finished": finished,
                      "restarts": counts["restarts"], "reloads": counts["reloads_sent"],
                      "floods": counts["floods"]})
            samples.append(s)
            log(f"t={s['t_s']:5d}s VmRSS {s['vm_rss_kib']} KiB RssAnon {s['rss_anon_kib']} KiB "
                f"fds {s['fds']} (max {s['fds_max']}) threads {s['threads']} children "
                f"{s['children']} zombies {s['zombies']}; runs {finished}/{s['runs_requested']}, "
                f"restarts {s['restarts']}, reloads {s['reloads']}, floods {s['floods']}")
            next_t += sample_every
            stop_sampling.wait(max(0.0, next_t - time.monotonic()))

    sampling = threading.Thread(target=sampler, daemon=True)
    try:
        agent.start(args=("--log-level", "info"))
        obs = Observer(broker.port, agent.base)
        if not obs.wait_ready(10):
            raise RuntimeError("the observer did not see the agent online")
        sampling.start()
        end = t0 + minutes * 60
        nxt = {"run": t0, "restart": t0 + restart_every, "hup": t0 + hup_every,
               "flood": t0 + flood_every}
        i = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if agent.proc.poll() is not None:
                problems.append(f"the agent exited with {agent.proc.returncode}")
                break
            due = min(nxt, key=nxt.get)
            if nxt[due] > now:
                time.sleep(min(nxt[due], end) - now)
                continue
            if due == "run":
                nxt["run"] += run_every
                if nxt["run"] < now:  # fell behind (a restart): do not burst
                    nxt["run"] = now + run_every
                if not obs.ready():
                    continue  # the broker is away: a request now would be lost, not refused
                command, fields, expect = MIX[i % len(MIX)]
                i += 1
                rid = unique("s")
                expected[rid] = (command, expect)
                obs.publish(f"{agent.base}/cmd/{command}/start", json.dumps(dict(fields, id=rid)))
                counts["runs_requested"] += 1
            elif due == "restart":
                nxt["restart"] += restart_every
                broker.restart()
                counts["restarts"] += 1
            elif due == "hup":
                nxt["hup"] += hup_every
                variant ^= 1
                cfg = dict(agent.config, commands=commands(variant), groups=[f"soak{variant}"])
                with open(agent.config_path, "w") as f:
                    f.write(yaml.safe_dump(cfg, sort_keys=False))
                agent.send_signal(signal.SIGHUP)
                counts["reloads_sent"] += 1
            elif due == "flood":
                if not obs.ready():  # the broker is restarting: flood when it is back
                    nxt["flood"] = now + 0.5
                    continue
                nxt["flood"] += flood_every
                if nxt["flood"] < now:
                    nxt["flood"] = now + flood_every
                msgs = flood_messages(rng, agent.base, agent.prefix)
                for topic, payload, retain in msgs:
                    obs.publish(topic, payload, qos=rng.choice((0, 1)), retain=retain)
                counts["floods"] += 1
                counts["flood_messages"] += len(msgs)
        # the end: let the last runs finish, then one more must work
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with obs.cond:
                if all(r in obs.finals for r in list(expected)[-50:]):
                    break
            time.sleep(0.2)
        stop_sampling.set()
        sampling.join(15)
        if agent.proc.poll() is None and obs.wait_ready(15):
            rid = unique("last")
            obs.publish(f"{agent.base}/cmd/echo/start", json.dumps({"id": rid, "args": ["bye"]}))
            with obs.cond:
                if not obs.cond.wait_for(lambda: rid in obs.finals, 10):
                    problems.append("the agent did not run a last request at the end")
                elif obs.finals[rid].get("exit_code") != 0:
                    problems.append(f"the last request ended {obs.finals[rid]}")
        else:
            problems.append("the agent was not online at the end")
        with obs.cond:
            finals = dict(obs.finals)
        for rid, (command, (state, code, lines)) in expected.items():
            doc = finals.get(rid)
            if doc is None:
                continue
            counts["runs_finished"] += 1
            key = "exit_code" if state == "exited" else "reason"
            if doc.get("state") != state or doc.get(key) != code or doc.get("lines") != lines:
                unexpected.append((command, doc))
        counts["runs_unexpected"] = len(unexpected)
        counts["runs_unanswered"] = len(expected) - counts["runs_finished"]
        text = agent.log_text()
        counts["reloads_logged"] = text.count("info reloaded ")
        counts["reload_refused"] = text.count("reload refused")
        counts["reconnects_logged"] = text.count("mqtt: connection lost")
        counts["agent_errors_logged"] = len(re.findall(r"(?m)^\S+ \S+ (?:error|critical) ", text))
    finally:
        stop_sampling.set()
        if sampling.is_alive():
            sampling.join(15)
        problems += agent.teardown()
        if obs is not None:
            obs.close()
        broker.kill()
    counts["seconds"] = round(time.monotonic() - t0)
    plateau, violations = judge(samples, plateau_s)
    if unexpected:
        violations.append(f"{len(unexpected)} runs ended otherwise than their command does, e.g. "
                          f"{unexpected[:3]}")
    if counts["reloads_logged"] != counts["reloads_sent"]:
        violations.append(f"{counts['reloads_sent']} SIGHUPs sent, {counts['reloads_logged']} "
                          f"reloads logged")
    violations += problems
    result = {"samples": samples, "plateau": plateau, "plateau_s": plateau_s,
              "violations": violations, "counts": counts, "ok": not violations and bool(samples),
              "periods": {"run": run_every, "restart": restart_every, "hup": hup_every,
                          "flood": flood_every, "sample": sample_every, "minutes": minutes},
              "workdir": workdir}
    if out:
        write(result, out)
    return result


COLUMNS = ["t_s", "vm_rss_kib", "rss_anon_kib", "fds", "fds_max", "threads", "children",
           "zombies", "runs_requested", "runs_finished", "restarts", "reloads", "floods"]


def summary_table(result):
    s = result["samples"]
    first, last = s[0], s[-1]
    c = result["counts"]
    rows = [
        ("VmRSS (KiB)", first["vm_rss_kib"], last["vm_rss_kib"], result["plateau"]["vm_rss_kib"],
         max(x["vm_rss_kib"] for x in s)),
        ("RssAnon (KiB)", first["rss_anon_kib"], last["rss_anon_kib"],
         result["plateau"]["rss_anon_kib"], max(x["rss_anon_kib"] for x in s)),
        ("open fds", first["fds"], last["fds"], result["plateau"]["fds"], max(x["fds"] for x in s)),
        ("threads", first["threads"], last["threads"], result["plateau"]["threads"],
         max(x["threads"] for x in s)),
        ("zombies", first["zombies"], last["zombies"], 0, max(x["zombies"] for x in s)),
    ]
    lines = ["| sample | start | end | plateau (first %ds) | max |" % result["plateau_s"],
             "|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |" for r in rows]
    lines += ["", "| count | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in c.items()]
    return "\n".join(lines)


def write(result, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for s in result["samples"]:
            w.writerow(s)
    p = result["periods"]
    with open(out + ".md", "w") as f:
        f.write(f"# linewired soak, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}\n\n")
        f.write(f"{p['minutes']} min; a run every {p['run']}s, broker restart every "
                f"{p['restart']}s, SIGHUP every {p['hup']}s, flood every {p['flood']}s, a sample "
                f"every {p['sample']}s. Result: {'PASS' if result['ok'] else 'FAIL'}\n\n")
        if result["samples"]:
            f.write(summary_table(result) + "\n\n")
        for v in result["violations"]:
            f.write(f"- FAIL: {v}\n")
        f.write("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n")
        for s in result["samples"]:
            f.write("| " + " | ".join(str(s.get(k, "")) for k in COLUMNS) + " |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--run-every", type=float, default=0.1)
    ap.add_argument("--restart-every", type=float, default=60)
    ap.add_argument("--hup-every", type=float, default=45)
    ap.add_argument("--flood-every", type=float, default=30)
    ap.add_argument("--sample-every", type=float, default=10)
    ap.add_argument("--plateau", type=float, default=None,
                    help="seconds of the plateau (default: 60, or a longest period + 2 samples)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "soak"),
                    help="writes OUT.csv and OUT.md")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    result = soak(a.minutes, a.run_every, a.restart_every, a.hup_every, a.flood_every,
                  a.sample_every, a.plateau, a.workdir, a.out, log=log)
    if result["samples"]:
        log(summary_table(result))
    for v in result["violations"]:
        log(f"FAIL: {v}")
    log(f"{'PASS' if result['ok'] else 'FAIL'}; samples in {a.out}.csv, summary in {a.out}.md")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
