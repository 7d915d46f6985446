"""Fan-out results a script can trust (SPEC §10, issue 18), with real agents on a real
mosquitto: which devices a `--group`/`--all` run targets and how offline and silent ones
count, `--json` (NDJSON on stdout, nothing else), and rollouts with `--batch` and
`--fail-fast`. The client's path comes from LINEWIRE; every wait is bounded."""

import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from harness import SLOWDOWN, WAIT, unique, wait_until
from test_client import ECHO, LINEWIRE, RUN_LIMIT, argv, client_env, finish, lines, lw, read_line, spawn

PROG = """
echo "hello from $LINEWIRE_DEVICE"
case "$LINEWIRE_DEVICE" in
  *-a) exit 3 ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture(scope="module", autouse=True)
def _client_binary():
    if not os.path.exists(LINEWIRE):
        pytest.exit(f"linewire not found at {LINEWIRE} (set LINEWIRE)", returncode=2)


def members(agent, prog, group, n=3, extra=None):
    """`n` agents in `group`, named ...-a, ...-b, ... (so name order is start order)."""
    p = prog("hello.sh", PROG)
    commands = {"hello": {"exec": [p]}, "echo": ECHO}
    commands.update(extra or {})
    base = unique("f")
    ms = [agent(commands=commands, device=f"{base}-{s}", config={"groups": [group]})
          for s in "abcdefgh"[:n]]
    # `online` comes before the retained info: wait for the info too, or a member killed
    # at once would leave no record of its groups.
    def infos():
        docs = {d["device"]: d for d in json.loads(lw(ms[0], "ls", "--json").stdout)}
        return all(group in docs.get(m.device, {}).get("groups", []) for m in ms)
    wait_until(infos, timeout=WAIT, what="every member's retained info")
    return ms


def wait_offline(a):
    """Until the broker has published `a`'s last will (its retained status is offline)."""
    def offline():
        r = lw(a, "ls", "--json")
        return any(d["device"] == a.device and d["status"] == "offline" for d in json.loads(r.stdout))
    wait_until(offline, timeout=WAIT, what=f"{a.device} offline")


def last_err_line(r):
    return r.stderr.decode().rstrip("\n").splitlines()[-1]


def ndjson(out):
    """Every stdout line, parsed; fails on any line that is not a JSON object."""
    docs = []
    for raw in out.decode().splitlines():
        doc = json.loads(raw)
        assert isinstance(doc, dict), raw
        docs.append(doc)
    return docs


# --------------------------------------------------------------------------- targets


def test_offline_member_is_reported_and_counts_255(agent, prog):
    group = unique("grp")
    a, b, c = members(agent, prog, group, extra=None)
    c.kill()
    wait_offline(c)
    r = lw(a, "run", "--group", group, "echo", "hi")
    assert r.returncode == 255, r.stderr
    assert sorted(lines(r.stdout)) == sorted(f"{d.device}: hi" for d in (a, b))
    err = r.stderr.decode()
    assert f"{c.device}: offline, not run" in err
    assert last_err_line(r) == "linewire: 3 targeted: 2 ok, 0 failed, 1 offline, 0 no answer"


def test_online_leaves_offline_members_out_on_purpose(agent, prog):
    group = unique("grp")
    a, b, c = members(agent, prog, group)
    c.kill()
    wait_offline(c)
    r = lw(a, "run", "--group", group, "--online", "echo", "hi")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert f"skipped 1 offline: {c.device}" in err
    assert last_err_line(r) == ("linewire: 2 targeted: 2 ok, 0 failed, 0 offline, 0 no answer "
                                "(1 offline skipped)")


def test_all_says_how_many_offline_it_skipped(agent, prog):
    group = unique("grp")
    a, b, c = members(agent, prog, group)
    c.kill()
    wait_offline(c)
    r = lw(a, "run", "--all", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert c.device not in r.stdout.decode()
    assert "skipped 1 offline" in r.stderr.decode()
    assert last_err_line(r).endswith("2 targeted: 2 ok, 0 failed, 0 offline, 0 no answer "
                                     "(1 offline skipped)")


def test_member_that_neither_answers_nor_goes_offline_is_no_answer(agent, prog):
    group = unique("grp")
    a, b, c = members(agent, prog, group)
    os.kill(b.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = lw(a, "run", "--group", group, "--wait", "1.5", "echo", "x")
        assert time.monotonic() - t0 < 8 * SLOWDOWN
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert r.returncode == 255, r.stderr
    assert f"no answer: {b.device}" in r.stderr.decode()
    assert last_err_line(r) == "linewire: 3 targeted: 2 ok, 0 failed, 0 offline, 1 no answer"


def test_group_that_matches_nothing_is_255_at_once(agent, prog):
    a, = members(agent, prog, unique("grp"), n=1)
    t0 = time.monotonic()
    r = lw(a, "run", "--group", "nosuchgroup", "echo", "x")
    assert time.monotonic() - t0 < 5 * SLOWDOWN  # not a wait of --wait (10 s)
    assert r.returncode == 255
    assert b"no device lists group 'nosuchgroup'" in r.stderr
    assert r.stdout == b""


def test_malformed_or_old_info_is_tolerated_and_reported(agent, prog):
    group = unique("grp")
    a, b = members(agent, prog, group, n=2)
    m = a.client()
    try:
        m.publish(f"{a.prefix}/junk-1/status", b"online", retain=True)
        m.publish(f"{a.prefix}/junk-1/info", b"{not json", retain=True)
        m.publish(f"{a.prefix}/old-1/status", b"online", retain=True)
        m.publish(f"{a.prefix}/old-1/info", json.dumps({"version": "0.1"}).encode(), retain=True)
        r = lw(a, "run", "--group", group, "echo", "x")
    finally:
        for t in ("junk-1/status", "junk-1/info", "old-1/status", "old-1/info"):
            m.publish(f"{a.prefix}/{t}", b"", retain=True)
        m.close()
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "junk-1: its retained info is missing or not a JSON object" in err
    assert "old-1: its retained info lists no groups (an older agent?)" in err
    assert last_err_line(r) == "linewire: 2 targeted: 2 ok, 0 failed, 0 offline, 0 no answer"


# --------------------------------------------------------------------------- --json


def check_json_run(r, docs):
    """The summary is last, alone of its kind, and agrees with the exit status."""
    summaries = [d for d in docs if "summary" in d]
    assert len(summaries) == 1 and docs[-1] is summaries[0], docs
    assert summaries[0]["summary"]["exit_status"] == r.returncode
    return summaries[0]["summary"]


def test_json_fan_out(agent, prog):
    group = unique("grp")
    p = prog("bytes.sh", "printf 'caf\\303\\251\\n'\nprintf 'bad \\377\\n'\necho oops >&2\n"
             "case \"$LINEWIRE_DEVICE\" in *-a) exit 3 ;; esac\n")
    a, b, c = members(agent, prog, group, extra={"bytes": {"exec": [p]}})
    c.kill()
    wait_offline(c)
    r = lw(a, "run", "--group", group, "--json", "bytes")
    assert r.returncode == 255, r.stderr  # c is offline
    docs = ndjson(r.stdout)
    summary = check_json_run(r, docs)
    assert summary == {"targeted": 3, "ok": 1, "failed": 1, "offline": 1, "no_answer": 0,
                       "not_run": 0, "skipped": 0, "exit_status": 255}
    for d in (a, b):
        mine = [x for x in docs if x.get("device") == d.device and "stream" in x]
        assert [(x["stream"], x["seq"], x.get("line"), x.get("line_b64")) for x in mine
                if x["stream"] == "out"] == [("out", 1, "café", None), ("out", 2, None, "YmFkIP8=")]
        assert [(x["seq"], x["line"]) for x in mine if x["stream"] == "err"] == [(1, "oops")]
        run = {x["run"] for x in mine}
        assert len(run) == 1
        finals = [x for x in docs if x.get("device") == d.device and "final" in x]
        assert len(finals) == 1 and finals[0]["run"] in run
    assert [x["final"]["exit_code"] for x in docs if x.get("device") == a.device and "final" in x] == [3]
    assert [x for x in docs if "error" in x] == [
        {"device": c.device, "error": {"code": "offline", "message": "offline, not run"}}]


def test_json_single_run(agent, prog):
    a, = members(agent, prog, unique("grp"), n=1)
    r = lw(a, "run", "--json", a.device, "hello")
    assert r.returncode == 3, r.stderr  # the device is ...-a
    docs = ndjson(r.stdout)
    summary = check_json_run(r, docs)
    assert summary["targeted"] == 1 and summary["failed"] == 1
    assert docs[0]["line"] == f"hello from {a.device}" and docs[0]["seq"] == 1
    assert docs[1]["final"]["exit_code"] == 3
    # A refusal: an error object, the same 255.
    r = lw(a, "run", "--json", a.device, "nosuchcommand")
    assert r.returncode == 255
    docs = ndjson(r.stdout)
    check_json_run(r, docs)
    assert docs[0]["device"] == a.device and docs[0]["error"]["code"]
    # An unknown device: no answer of any kind.
    r = lw(a, "run", "--json", "--wait", "1", "nosuchdevice", "hello")
    assert r.returncode == 255
    docs = ndjson(r.stdout)
    check_json_run(r, docs)
    assert "error" in docs[0]


def test_json_when_nothing_could_be_asked(agent, prog):
    """The broker cannot be reached: still NDJSON on stdout, ending with the summary and
    the exit status (one run: its device's error first), the reason on stderr."""
    from harness import free_port
    a, = members(agent, prog, unique("grp"), n=1)
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    r = lw(a, "run", "--json", a.device, "hello", broker=nowhere)
    assert r.returncode == 255 and b"cannot connect" in r.stderr, r.stderr
    docs = ndjson(r.stdout)
    summary = check_json_run(r, docs)
    assert summary["targeted"] == 1 and summary["not_run"] == 1
    assert docs[0]["device"] == a.device and docs[0]["error"]["code"] == "not_run"
    r = lw(a, "run", "--json", "--all", "hello", broker=nowhere)
    assert r.returncode == 255
    assert check_json_run(r, ndjson(r.stdout))["targeted"] == 0


def test_json_group_that_matches_nothing(agent, prog):
    a, = members(agent, prog, unique("grp"), n=1)
    r = lw(a, "run", "--json", "--group", "nosuchgroup", "echo")
    assert r.returncode == 255
    docs = ndjson(r.stdout)
    assert check_json_run(r, docs)["targeted"] == 0


# --------------------------------------------------------------------------- rollout


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


def most_at_once(finals):
    """The largest number of runs whose [started, ended] overlap, from their own states."""
    events = []
    for f in finals:
        events.append((parse_time(f["started"]), 1))
        events.append((parse_time(f["ended"]), -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    n = best = 0
    for _, d in events:
        n += d
        best = max(best, n)
    return best


SLEEPER = {"exec": ["/bin/sleep", "0.4"]}


def test_batch_keeps_at_most_n_running(agent, prog):
    group = unique("grp")
    ms = members(agent, prog, group, n=5, extra={"nap": SLEEPER})
    r = lw(ms[0], "run", "--group", group, "--batch", "2", "--json", "nap")
    assert r.returncode == 0, r.stderr
    docs = ndjson(r.stdout)
    check_json_run(r, docs)
    finals = [d["final"] for d in docs if "final" in d]
    assert len(finals) == 5
    assert most_at_once(finals) == 2, finals  # the bound, and used
    # Bigger than the group: all at once.
    r = lw(ms[0], "run", "--group", group, "--batch", "50", "--json", "nap")
    assert r.returncode == 0, r.stderr
    finals = [d["final"] for d in ndjson(r.stdout) if "final" in d]
    assert len(finals) == 5 and most_at_once(finals) >= 3


def test_batch_zero_and_misplaced_rollout_flags_are_usage_errors(agent):
    a = agent(commands={"echo": ECHO})
    for args in (["--group", "g", "--batch", "0"], ["--all", "--batch", "-1"],
                 ["--batch", "2", a.device], ["--fail-fast", a.device], ["--online", a.device]):
        r = lw(a, "run", *args, "echo", "x")
        assert r.returncode == 255, args
        assert r.stdout == b""


def test_fail_fast_starts_nothing_after_the_first_failure(agent, prog):
    group = unique("grp")
    ms = members(agent, prog, group, n=4)
    r = lw(ms[0], "run", "--group", group, "--batch", "1", "--fail-fast", "hello")
    assert r.returncode == 3, r.stderr  # ...-a exits 3, first in name order
    assert lines(r.stdout) == [f"{ms[0].device}: hello from {ms[0].device}"]
    err = r.stderr.decode()
    rest = ", ".join(m.device for m in ms[1:])
    assert f"not run (--fail-fast): {rest}" in err
    assert last_err_line(r) == "linewire: 4 targeted: 0 ok, 1 failed, 0 offline, 0 no answer, 3 not run"
    # Without --fail-fast every device runs.
    r = lw(ms[0], "run", "--group", group, "--batch", "1", "hello")
    assert r.returncode == 3
    assert len(lines(r.stdout)) == 4


def test_ctrl_c_during_a_batched_rollout(agent, prog):
    group = unique("grp")
    loop = prog("loop.sh", "echo ready\nwhile :; do sleep 0.05; done\n")
    ms = members(agent, prog, group, n=3, extra={"loop": {"exec": [loop]}})
    proc = spawn(ms[0], "run", "--group", group, "--batch", "1", "loop")
    assert read_line(proc) == f"{ms[0].device}: ready".encode()
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 130, err  # the running one was killed by INT
    text = err.decode()
    assert "sending INT" in text
    assert f"not run (interrupted): {ms[1].device}, {ms[2].device}" in text
    assert text.rstrip("\n").splitlines()[-1] == (
        "linewire: 3 targeted: 0 ok, 1 failed, 0 offline, 0 no answer, 2 not run")
    assert b"ready" not in out  # the one "ready" was read above: no other device ran


# --------------------------------------------------------------------------- reconnects


def test_fan_out_gets_every_line_exactly_once_across_a_broker_restart(agent, prog):
    """SPEC §10/§12 for a fan-out: the broker restarts mid-run (it keeps nothing), both
    ends reconnect, and each device's missed lines come from its agent's history, in
    order, once; the final states give the real exit statuses."""
    group = unique("grp")
    p = prog("ticker.sh", "i=0\nwhile [ $i -lt 60 ]; do i=$((i+1)); echo \"tick $i\"; "
                          "sleep 0.05; done\ncase \"$LINEWIRE_DEVICE\" in *-a) exit 2 ;; esac\n")
    ms = members(agent, prog, group, n=2, extra={"ticker": {"exec": [p]}})
    proc = spawn(ms[0], "run", "--group", group, "--json", "ticker")
    first = json.loads(read_line(proc))
    assert first["seq"] == 1
    ms[0].broker.restart()
    status, out, err = finish(proc)
    assert status == 2, err
    assert b"reconnected" in err
    docs = [first] + ndjson(out)
    assert docs[-1]["summary"]["exit_status"] == 2 and docs[-1]["summary"]["ok"] == 1
    for m in ms:
        got = [(d["seq"], d["line"]) for d in docs if d.get("device") == m.device and "line" in d]
        assert got == [(i, f"tick {i}") for i in range(1, 61)], (m.device, err)
    assert b"were lost" not in err and b"did not arrive" not in err, err
    assert any("replay of run" in open(m.log_path, errors="replace").read() for m in ms)


def test_member_reported_offline_that_answers_is_followed(agent, prog):
    """A flapping device: its retained status says offline (a stale last will) but it is
    up and gets the group request. It is reported offline, then followed when it
    answers, and its run counts like any other. (The client does not wait for a member
    it believes offline: the runs take a second, so that its answer surely comes while
    the other member's run still goes on.)"""
    group = unique("grp")
    a, b = members(agent, prog, group, n=2,
                   extra={"slow": {"exec": ["/bin/sh", "-c", "sleep 1; echo hi"]}})
    m = a.client()
    try:
        m.publish(f"{b.prefix}/{b.device}/status", b"offline", retain=True)
        r = lw(a, "run", "--group", group, "slow")
    finally:
        m.publish(f"{b.prefix}/{b.device}/status", b"online", retain=True)
        m.close()
    err = r.stderr.decode()
    assert f"{b.device}: offline, not run" in err
    assert f"{b.device} is back online and answered" in err, err
    assert r.returncode == 0, err
    assert sorted(lines(r.stdout)) == sorted(f"{d.device}: hi" for d in (a, b))
    assert last_err_line(r) == "linewire: 2 targeted: 2 ok, 0 failed, 0 offline, 0 no answer"
