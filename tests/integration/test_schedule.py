"""Issue 20, `every: DURATION` (SPEC §5): the agent starts a command itself, one period
after start-up and then every period with up to 10 % delay, transport `schedule`; a tick
that finds the command at max_instances is skipped and counted (/metrics); SIGHUP changes
or removes the period; a command that always fails keeps its schedule; --check-config
refuses a period under 1 s and what Home Assistant would drop, with line and column.
Drift over an hour is measured by bench/schedule_drift.py, not here."""

import datetime
import signal
import subprocess
import textwrap
import time

import yaml

from harness import LINEWIRED, SLOWDOWN, WAIT, free_port, wait_until
from wsclient import http_get


def wall(iso):
    """An ISO time of the agent's documents as seconds since the epoch."""
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def running_states(c, a, command, since=0):
    """The `running` state documents of the command's runs, with when they arrived."""
    out = []
    for m in c.snapshot(f"{a.base}/run/+/state", since):
        if m.payload:
            doc = m.json()
            if doc["command"] == command and doc["state"] == "running":
                out.append((m.time, doc))
    return out


def wait_runs(c, a, command, n, since=0, timeout=WAIT):
    c.wait_for(lambda msgs: len(running_states(c, a, command, since)) >= n, timeout,
               f"{n} scheduled runs of {command}")
    return running_states(c, a, command, since)


def test_every_starts_runs_of_transport_schedule(agent):
    """First tick one period after start, then about every period (at most 10 % late per
    tick, not accumulated); LINEWIRE_TRANSPORT and the state say `schedule`; `last` reads
    like a sensor."""
    a = agent(commands={"temp": {"exec": ["/bin/sh", "-c", "echo $LINEWIRE_TRANSPORT"],
                                 "every": "1s"}}, start=False)
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state", retained=False)
    c.subscribe(f"{a.base}/cmd/temp/last", retained=False)
    c.subscribe(f"{a.base}/info", retained=False)
    since = c.mark()
    a.start()
    # The agent's own clock: when it started (info) and when each run started (state), so
    # that the broker's and this client's delays do not count.
    began = wall(c.wait_msg(f"{a.base}/info", lambda m: m.payload, since).json()["started"])
    runs = wait_runs(c, a, "temp", 4, since, timeout=8 * SLOWDOWN)
    assert all(doc["transport"] == "schedule" for _, doc in runs)
    started = [wall(doc["started"]) for _, doc in runs]
    assert 0.99 <= started[0] - began <= 1.1 + 0.5 * SLOWDOWN, started[0] - began  # ms, rounded
    for t0, t1 in zip(started, started[1:]):
        assert 0.85 <= t1 - t0 <= 1.15 + 0.2 * SLOWDOWN, t1 - t0
    # Ticks 1 and 4 are due 3 s apart, give or take one tick's delay of up to 0.1 s:
    # late ticks do not add up.
    assert 2.85 <= started[3] - started[0] <= 3.15 + 0.2 * SLOWDOWN
    c.wait_payload(f"{a.base}/cmd/temp/last", "schedule", since)


def test_tick_at_max_instances_is_skipped_and_counted(agent):
    """A tick that finds the command at max_instances starts nothing, whatever on_busy
    says (here `queue`), and is counted in /metrics."""
    port = free_port()
    a = agent(commands={"slow": {"exec": ["/bin/sleep", "2.5"], "every": "1s", "max_instances": 1,
                                 "on_busy": "queue", "kill_grace": "200ms"}},
              config={"websocket": {"listen": f"127.0.0.1:{port}"}}, start=False)
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state", retained=False)
    since = c.mark()
    a.start()
    first = wait_runs(c, a, "slow", 1, since, timeout=4 * SLOWDOWN)[0][1]
    c.wait_msg(f"{a.base}/run/{first['run']}/state",
               lambda m: m.payload and m.json()["state"] == "exited", since)
    # Ticks at about 1, 2, 3 s: the first started the run that sleeps 2.5 s, so the
    # second (and maybe the third) found it busy, and nothing was queued behind it.
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    skipped = [line for line in body.decode().splitlines()
               if line.startswith('linewire_schedule_skipped_total{command="slow"}')]
    assert skipped and int(skipped[0].split()[-1]) >= 1, skipped
    assert "tick skipped, at max_instances (1)" in a.log_text()
    states = running_states(c, a, "slow", since)
    assert len(states) <= 2, states
    for _, doc in states[1:]:
        assert doc["started"] > first["started"]


def rewrite(a, commands):
    cfg = dict(a.config)
    cfg["commands"] = commands
    with open(a.config_path, "w") as f:
        f.write(yaml.safe_dump(cfg, sort_keys=False))


def test_sighup_changes_or_removes_the_period(agent):
    """A changed period takes effect from the reload (one new period later); a removed one
    stops; runs in progress go on."""
    a = agent(commands={"tick": {"exec": ["/bin/true"], "every": "1s"}})
    c = a.client()
    c.subscribe(f"{a.base}/run/+/state", retained=False)
    wait_runs(c, a, "tick", 1, timeout=4 * SLOWDOWN)
    rewrite(a, {"tick": {"exec": ["/bin/true"], "every": "3s"}})
    a.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in a.log_text(), what="the reload")
    since, reloaded = c.mark(), time.monotonic()
    runs = wait_runs(c, a, "tick", 1, since, timeout=6 * SLOWDOWN)
    # The 1 s ticks stopped: the next run is about 3 s after the reload, not 1 s.
    assert runs[0][0] - reloaded >= 2.5, runs[0][0] - reloaded
    rewrite(a, {"tick": {"exec": ["/bin/true"]}})
    a.send_signal(signal.SIGHUP)
    wait_until(lambda: a.log_text().count("reloaded") >= 2, what="the second reload")
    since = c.mark()
    c.assert_none(f"{a.base}/run/+/state",
                  lambda m: m.payload and m.json()["state"] == "running", since=since,
                  duration=4 * SLOWDOWN, what="a run after every was removed")
    assert "schedule 'tick': stopped" in a.log_text()


def test_a_command_that_always_fails_keeps_its_schedule(agent):
    """No back-off: every tick runs it again and each run ends `exited` with its code."""
    a = agent(commands={"broken": {"exec": ["/bin/sh", "-c", "exit 4"], "every": "1s"}},
              start=False)
    c = a.client()
    c.subscribe(f"{a.base}/cmd/broken/result", retained=False)
    since = c.mark()
    a.start()
    c.wait_for(lambda msgs: len([m for m in msgs[since:] if m.topic.endswith("/result")]) >= 3,
               timeout=6 * SLOWDOWN, what="three failed scheduled runs")
    results = [m for m in c.snapshot(f"{a.base}/cmd/broken/result", since)]
    assert all(m.json()["exit_code"] == 4 for m in results)
    assert results[2].time - results[0].time <= 3.0 * SLOWDOWN


def check_config(tmp_path, text):
    p = tmp_path / "linewire.yaml"
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    r = subprocess.run([LINEWIRED, "--check-config", str(p)], capture_output=True, text=True,
                       timeout=20 * SLOWDOWN)
    return r.returncode, r.stderr + r.stdout, str(p)


def test_check_config_refuses_bad_periods_with_line_and_column(tmp_path):
    rc, out, path = check_config(tmp_path, """
        device: pi
        commands:
          zero: {exec: [/bin/true], every: 0}
          negative: {exec: [/bin/true], every: -1m}
          fast: {exec: [/bin/true], every: 999ms}
          fine: {exec: [/bin/true], every: 1s}
        """)
    assert rc == 2, out
    assert f"{path}:3:36: commands.zero.every: must be at least 1s, not 0" in out
    assert f"{path}:4:40: commands.negative.every: expected a duration" in out
    assert f"{path}:5:36: commands.fast.every: must be at least 1s, not 999ms" in out
    assert "fine" not in out


def test_check_config_refuses_what_home_assistant_would_drop(tmp_path):
    """SPEC §9: wrong types, unknown device classes, templates that are not Jinja, and
    names that meet in one discovery topic, each with line and column."""
    rc, out, path = check_config(tmp_path, """
        device: pi
        homeassistant: {discovery: true}
        commands:
          temp:
            exec: [/bin/true]
            homeassistant: {expire_after: "90s", device_class: celsius}
          door:
            exec: [/bin/true]
            homeassistant: {value_template: "{% if value == '1' %}ON"}
          b.up: {exec: [/bin/true]}
          b_up: {exec: [/bin/true]}
        """)
    assert rc == 2, out
    assert (f"{path}:6:35: commands.temp.homeassistant.expire_after: expected an integer, "
            "got the quoted string '90s'") in out
    assert (f"{path}:6:56: commands.temp.homeassistant.device_class: 'celsius' is not a "
            "device_class of Home Assistant's sensor") in out
    assert (f"{path}:9:37: commands.door.homeassistant.value_template: is not a Jinja template "
            "Home Assistant can read: '{% if %}' is never closed") in out
    assert (f"{path}:11:3: commands.b_up: meets command 'b.up' in one Home Assistant discovery "
            "topic") in out
