"""The `linewire` client (SPEC §10, issue 4) against a private mosquitto and real agents:
every subcommand, every exit status, stdin, signals and fan-out. The client's path comes
from LINEWIRE (ctest sets it); every wait is bounded."""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import SLOWDOWN, WAIT, free_port, unique

LINEWIRE = os.environ.get("LINEWIRE", "/work/main/build/cli/linewire")

# How long one client invocation may take before the test calls it hung.
RUN_LIMIT = 20 * SLOWDOWN

CAT = {"exec": ["/bin/cat"]}
SEQ = {"exec": ["/usr/bin/seq"], "args": {"pattern": "[0-9]+", "max": 2}}
ECHO = {"exec": ["/bin/echo"], "args": {"pattern": ".*", "max": 8}}
SLEEP = {"exec": ["/bin/sleep"], "args": {"pattern": "[0-9.]+", "max": 1}, "kill_grace": "500ms"}


@pytest.fixture(scope="module", autouse=True)
def _client_binary():
    if not os.path.exists(LINEWIRE):
        pytest.exit(f"linewire not found at {LINEWIRE} (set LINEWIRE)", returncode=2)


def argv(a, *args, prefix=None, broker=None):
    """The client's command line for agent `a` (its broker and prefix)."""
    url = broker or a.broker.url
    return [LINEWIRE, "--broker", url, "--prefix", prefix or a.prefix, *args]


def client_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWIRE")}
    env.update(extra or {})
    return env


def lw(a, *args, stdin=b"", timeout=RUN_LIMIT, prefix=None, broker=None, env=None):
    """Runs the client to the end; stdin is `stdin` (bytes), closed after."""
    return subprocess.run(argv(a, *args, prefix=prefix, broker=broker), input=stdin,
                          capture_output=True, timeout=timeout, env=client_env(env))


def spawn(a, *args, stdin=subprocess.DEVNULL, prefix=None):
    return subprocess.Popen(argv(a, *args, prefix=prefix), stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=client_env())


def read_line(proc, timeout=WAIT):
    """The next stdout line of `proc` (bytes, without the newline), within `timeout`."""
    deadline = time.monotonic() + timeout
    line = b""
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete stdout line within {timeout}s (have {line!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"stdout closed; stderr: {proc.stderr.read()!r}")
            line += chunk
    return line[:-1]


def finish(proc, timeout=RUN_LIMIT):
    """Waits for `proc`; returns (status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"linewire did not end within {timeout}s; stderr: {err!r}")
    return proc.returncode, out, err


def lines(data):
    return data.decode().splitlines()


# --------------------------------------------------------------------------- run


def test_run_prints_stdout_and_stderr_and_exits_with_the_remote_code(agent, prog):
    p = prog("three.sh", "echo one\necho two\necho oops >&2\nexit 3\n")
    a = agent(commands={"three": {"exec": [p]}})
    r = lw(a, "run", a.device, "three")
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"one\ntwo\n"  # nothing but the program's output
    assert b"oops\n" in r.stderr


def test_run_exit_zero_args_and_their_flags(agent):
    """Arguments after the command are the remote command's, flags included (`-h`)."""
    a = agent(commands={"echo": ECHO})
    r = lw(a, "run", a.device, "echo", "-h", "two words", "--timeout")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"-h two words --timeout\n"
    assert r.stderr == b""


def test_run_many_lines_in_order(agent):
    a = agent(commands={"seq": SEQ})
    r = lw(a, "run", a.device, "seq", "3000")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 3001)).encode()
    assert r.stderr == b""


def test_run_with_own_id_and_runs_lists_it(agent):
    a = agent(commands={"echo": ECHO})
    rid = unique("mine")
    assert lw(a, "run", "--id", rid, a.device, "echo", "x").returncode == 0
    states = json.loads(lw(a, "runs", a.device, "--json").stdout)
    assert [s["run"] for s in states] == [rid]


def test_stdin_is_forwarded_line_by_line_then_eof(agent):
    a = agent(commands={"cat": CAT})
    r = lw(a, "run", a.device, "cat", stdin=b"a\nb\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"a\nb\n"
    # A last line without a newline is still a line.
    r = lw(a, "run", a.device, "cat", stdin=b"x\ny")
    assert r.stdout == b"x\ny\n"


def test_stdin_from_a_shell_pipe(agent):
    """printf 'a\\nb\\n' | linewire run DEVICE cat"""
    a = agent(commands={"cat": CAT})
    cmd = " ".join(f"'{w}'" for w in argv(a, "run", a.device, "cat"))
    r = subprocess.run(["/bin/sh", "-c", f"printf 'a\\nb\\n' | {cmd}"], capture_output=True,
                       timeout=RUN_LIMIT, env=client_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"a\nb\n"


def test_no_stdin_gives_the_run_an_empty_stdin(agent):
    """--no-stdin leaves local stdin alone (it stays open here) and the run sees EOF."""
    a = agent(commands={"cat": CAT})
    proc = spawn(a, "run", "--no-stdin", a.device, "cat", stdin=subprocess.PIPE)
    status, out, err = finish(proc)
    assert status == 0, err
    assert out == b""


def test_refused_is_255_with_the_reason(agent):
    a = agent(commands={"echo": ECHO, "plain": {"exec": ["/bin/true"]}})
    r = lw(a, "run", a.device, "nosuch")
    assert r.returncode == 255
    assert b"unknown_command" in r.stderr and b"nosuch" in r.stderr
    assert r.stdout == b""
    r = lw(a, "run", a.device, "plain", "arg")
    assert r.returncode == 255
    assert b"args_not_allowed" in r.stderr


def test_offline_device_is_255_at_once(agent):
    a = agent(commands={"echo": ECHO})
    a.stop()  # retained status: offline
    t0 = time.monotonic()
    r = lw(a, "run", a.device, "echo", "x")
    assert r.returncode == 255
    assert b"offline" in r.stderr
    assert time.monotonic() - t0 < 3 * SLOWDOWN


def test_unknown_device_is_255(agent):
    a = agent()
    t0 = time.monotonic()
    r = lw(a, "run", unique("ghost"), "echo")
    assert r.returncode == 255
    assert b"no device" in r.stderr
    assert time.monotonic() - t0 < 5 * SLOWDOWN  # the bounded status wait (2 s)


def test_unreachable_broker_is_255_within_seconds(agent):
    a = agent(start=False)
    t0 = time.monotonic()
    r = lw(a, "run", a.device, "echo", broker=f"mqtt://127.0.0.1:{free_port()}")
    assert r.returncode == 255
    assert b"cannot connect" in r.stderr
    assert time.monotonic() - t0 < 7 * SLOWDOWN


def test_silent_broker_is_255_within_seconds_and_ctrl_c_works(agent):
    """A broker that accepts the connection and never answers: 255 after the connect
    timeout (5 s); Ctrl-C meanwhile ends the client at once."""
    a = agent(start=False)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        r = lw(a, "ls", broker=url)
        assert r.returncode == 255
        assert b"no answer within 5 s" in r.stderr
        assert time.monotonic() - t0 < 8 * SLOWDOWN
        proc = subprocess.Popen(argv(a, "ls", broker=url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=client_env())
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        status, out, err = finish(proc)
        assert status == 130
        assert time.monotonic() - t0 < 1.5 * SLOWDOWN
    finally:
        silent.close()


def test_broker_from_the_environment(agent):
    a = agent(commands={"echo": ECHO})
    r = subprocess.run([LINEWIRE, "--prefix", a.prefix, "run", a.device, "echo", "env"],
                       capture_output=True, timeout=RUN_LIMIT,
                       env=client_env({"LINEWIRE_BROKER": a.broker.url}))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"env\n"


def test_timeout_is_124(agent):
    a = agent(commands={"sleep": SLEEP})
    t0 = time.monotonic()
    r = lw(a, "run", "--timeout", "1", a.device, "sleep", "30")
    assert r.returncode == 124, r.stderr
    assert time.monotonic() - t0 < 6 * SLOWDOWN


def test_timeout_kills_a_run_that_ignores_term(agent, prog):
    """The agent's own timeout says TERM, the grace passes, KILL: still 124."""
    p = prog("stubborn.sh", "trap '' TERM\necho ready\nwhile :; do sleep 0.1; done\n")
    a = agent(commands={"stubborn": {"exec": [p], "kill_grace": "500ms"}})
    r = lw(a, "run", "--timeout", "1", a.device, "stubborn")
    assert r.returncode == 124, r.stderr
    assert r.stdout == b"ready\n"


def test_kill_sends_term_and_the_run_exits_143(agent):
    a = agent(commands={"sleep": SLEEP})
    rid = unique("k")
    proc = spawn(a, "run", "--id", rid, a.device, "sleep", "30")
    c = a.client()
    c.subscribe(c.topic(f"run/{rid}/state"))
    c.wait_msg(c.topic(f"run/{rid}/state"), lambda m: m.json().get("state") == "running")
    k = lw(a, "kill", a.device, rid)
    assert k.returncode == 0, k.stderr
    assert k.stdout == b""
    status, out, err = finish(proc)
    assert status == 143, err
    assert b"killed by TERM" in err


def test_kill_with_a_signal_name(agent, prog):
    p = prog("usr1.sh", "trap 'echo got-usr1; exit 7' USR1\necho ready\n"
             "while :; do sleep 0.05; done\n")
    a = agent(commands={"usr1": {"exec": [p]}})
    rid = unique("u")
    proc = spawn(a, "run", "--id", rid, a.device, "usr1")
    assert read_line(proc) == b"ready"
    assert lw(a, "kill", a.device, rid, "SIGUSR1").returncode == 0
    status, out, err = finish(proc)
    assert status == 7, err
    assert out == b"got-usr1\n"


def test_kill_refusals_are_255(agent):
    a = agent()
    r = lw(a, "kill", a.device, unique("none"))
    assert r.returncode == 255
    assert b"unknown_run" in r.stderr
    r = lw(a, "kill", a.device, "r1", "BOGUS")
    assert r.returncode == 255
    assert b"unknown signal" in r.stderr
    a.stop()
    r = lw(a, "kill", a.device, "r1")
    assert r.returncode == 255
    assert b"offline" in r.stderr


def test_ctrl_c_sends_int(agent, prog):
    p = prog("loop.sh", "echo ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"loop": {"exec": [p]}})
    proc = spawn(a, "run", a.device, "loop")
    assert read_line(proc) == b"ready"
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 130, err  # killed by INT: 128 + 2
    assert b"sending INT" in err


def test_second_ctrl_c_sends_kill(agent, prog):
    p = prog("deaf.sh", "trap '' INT\necho ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"deaf": {"exec": [p]}})
    proc = spawn(a, "run", a.device, "deaf")
    assert read_line(proc) == b"ready"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5 * SLOWDOWN)
    assert proc.poll() is None, "the run ignores INT, so the client must still wait"
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 137, err  # killed by KILL: 128 + 9


def test_device_going_offline_mid_run_is_255(agent, prog):
    """Offline for longer than --wait: the run's end is unknown."""
    p = prog("loop.sh", "echo ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"loop": {"exec": [p]}})
    proc = spawn(a, "run", "--wait", "1", a.device, "loop")
    assert read_line(proc) == b"ready"
    a.kill()  # SIGKILL: the broker publishes the last will, `offline`
    status, out, err = finish(proc)
    assert status == 255
    assert b"went offline" in err and b"did not come back" in err


def test_a_closed_stdout_ends_the_run(agent):
    """`linewire run ... | head -1`: the reader went away, so the run is told TERM."""
    a = agent(commands={"seq": SEQ})
    rid = unique("pipe")
    cmd = " ".join(f"'{w}'" for w in argv(a, "run", "--id", rid, a.device, "seq", "1000000000"))
    r = subprocess.run(["/bin/sh", "-c", f"{cmd} | head -1"], capture_output=True,
                       timeout=RUN_LIMIT, env=client_env())
    assert r.stdout == b"1\n"
    c = a.client()
    c.subscribe(c.topic(f"run/{rid}/state"))
    m = c.wait_msg(c.topic(f"run/{rid}/state"),
                   lambda m: m.json().get("state") in ("killed", "exited"), timeout=WAIT)
    assert m.json()["state"] == "killed"


def test_mqtt_311(agent):
    """With 3.1.1 the client warns once that duplicates cannot be detected; replies come
    through `reply_to`, exit codes and stdin work as with MQTT 5."""
    a = agent(commands={"cat": CAT, "seq": SEQ, "sleep": SLEEP})
    r = lw(a, "--protocol", "3.1.1", "run", a.device, "cat", stdin=b"a\nb\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"a\nb\n"
    assert r.stderr.count(b"cannot be detected") == 1
    r = lw(a, "--protocol", "3.1.1", "run", a.device, "seq", "500")
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 501)).encode()
    assert b"did not arrive" not in r.stderr
    assert lw(a, "--protocol", "3.1.1", "run", a.device, "nosuch").returncode == 255
    assert lw(a, "--protocol", "3.1.1", "run", "--timeout", "1", a.device, "sleep",
              "30").returncode == 124


def test_prefix_with_a_slash(agent):
    a = agent(commands={"echo": ECHO}, prefix="site-a/lw")
    r = lw(a, "run", a.device, "echo", "deep")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"deep\n"
    assert [d["device"] for d in json.loads(lw(a, "ls", "--json").stdout)] == [a.device]


def test_usage_errors_are_255(agent):
    a = agent(start=False)
    r = lw(a, "run", "only-a-device")
    assert r.returncode == 255
    assert b"DEVICE COMMAND" in r.stderr
    assert lw(a, "run", "bad/name", "x").returncode == 255
    assert lw(a, "run", "dev", "cmd", prefix="a/#").returncode == 255
    assert lw(a, "--help").returncode == 0


def password_broker(make_broker, tmp_path, user, password):
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd missing")
    pwfile = tmp_path / "client-test.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), user, password], check=True,
                   capture_output=True, timeout=20)
    os.chmod(pwfile, 0o644)
    return make_broker(extra=[f"password_file {pwfile}"], anonymous=False)


def test_username_and_password(agent, make_broker, tmp_path):
    """--username with --password-file or LINEWIRE_PASSWORD; a wrong one is 255."""
    b = password_broker(make_broker, tmp_path, "lwuser", "s3cret-pw")
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    a = agent(broker=b, commands={"echo": ECHO},
              config={"broker": {"username": "lwuser", "password_file": str(secret)}},
              client_auth={"username": "lwuser", "password": "s3cret-pw"})
    r = lw(a, "--username", "lwuser", "--password-file", str(secret), "run", a.device, "echo", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"x\n"
    r = lw(a, "--username", "lwuser", "run", a.device, "echo", "y",
           env={"LINEWIRE_PASSWORD": "s3cret-pw"})
    assert r.returncode == 0, r.stderr
    r = lw(a, "--username", "lwuser", "run", a.device, "echo", "z",
           env={"LINEWIRE_PASSWORD": "wrong"})
    assert r.returncode == 255
    assert b"refused by the broker" in r.stderr


def test_tls_with_a_client_certificate(agent, make_broker, pki):
    """--ca-file, --cert-file, --key-file, named like the agent's tls keys."""
    b = make_broker(extra=[f"cafile {pki}/ca.crt", f"certfile {pki}/server.crt",
                           f"keyfile {pki}/server.key", "require_certificate true"])
    tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "client.crt"),
           "key_file": str(pki / "client.key")}
    a = agent(broker=b, commands={"echo": ECHO}, config={"broker": {"tls": tls}},
              client_tls={"ca": tls["ca_file"], "cert": tls["cert_file"], "key": tls["key_file"]})
    assert b.url.startswith("mqtts://")
    r = lw(a, "--ca-file", tls["ca_file"], "--cert-file", tls["cert_file"], "--key-file",
           tls["key_file"], "run", a.device, "echo", "secure")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"secure\n"
    r = lw(a, "--ca-file", tls["ca_file"], "run", a.device, "echo", "no-cert")
    assert r.returncode == 255
    assert b"cannot connect" in r.stderr


# --------------------------------------------------------------------------- fan-out

GROUP_PROG = """
echo "hello from $LINEWIRE_DEVICE"
case "$LINEWIRE_DEVICE" in
  *-a) exit 3 ;;
  *-b) exit 5 ;;
  *) exit 0 ;;
esac
"""


def group_of_three(agent, prog, group, extra_commands=None):
    """Three agents in `group` (devices ...-a, -b, -c) and one outside it (...-x)."""
    p = prog("hello.sh", GROUP_PROG)
    commands = {"hello": {"exec": [p]}, "sleep": SLEEP}
    commands.update(extra_commands or {})
    base = unique("g")
    inside = [agent(commands=commands, device=f"{base}-{s}", config={"groups": [group, "all"]})
              for s in "abc"]
    outside = agent(commands=commands, device=f"{base}-x", config={"groups": ["elsewhere"]})
    return inside, outside


def test_group_fan_out(agent, prog):
    group = unique("kitchen")
    inside, outside = group_of_three(agent, prog, group)
    r = lw(inside[0], "run", "--group", group, "hello")
    assert r.returncode == 5, r.stderr  # the highest of 3, 5, 0
    got = sorted(lines(r.stdout))
    assert got == sorted(f"{a.device}: hello from {a.device}" for a in inside)
    assert outside.device not in r.stdout.decode()
    err = r.stderr.decode()
    assert f"ok: {inside[2].device}" in err
    assert f"{inside[0].device} (exit 3)" in err and f"{inside[1].device} (exit 5)" in err
    assert "3 targeted: 1 ok, 2 failed, 0 offline, 0 no answer" in err


def test_group_fan_out_all_ok(agent, prog):
    group = unique("grp")
    inside, outside = group_of_three(agent, prog, group, {"echo": ECHO})
    r = lw(inside[0], "run", "--group", group, "echo", "-h", "hi")
    assert r.returncode == 0, r.stderr
    assert sorted(lines(r.stdout)) == sorted(f"{a.device}: -h hi" for a in inside)
    assert "3 targeted: 3 ok" in r.stderr.decode()


def test_group_member_that_does_not_answer(agent, prog):
    """A device of the group that is online but does not answer within --wait: 255."""
    group = unique("grp")
    inside, outside = group_of_three(agent, prog, group, {"echo": ECHO})
    frozen = inside[1]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = lw(inside[0], "run", "--group", group, "--wait", "1.5", "echo", "x")
        assert time.monotonic() - t0 < 8 * SLOWDOWN
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert r.returncode == 255, r.stderr
    assert sorted(lines(r.stdout)) == sorted(f"{a.device}: x" for a in (inside[0], inside[2]))
    assert f"no answer: {frozen.device}" in r.stderr.decode()


def test_group_timeout_is_124(agent, prog):
    group = unique("grp")
    inside, outside = group_of_three(agent, prog, group)
    t0 = time.monotonic()
    r = lw(inside[0], "run", "--group", group, "--timeout", "1", "sleep", "30")
    assert r.returncode == 124, r.stderr
    assert time.monotonic() - t0 < 8 * SLOWDOWN


def test_all_online_devices(agent, prog):
    group = unique("grp")
    inside, outside = group_of_three(agent, prog, group, {"echo": ECHO})
    gone = agent(commands={"echo": ECHO})
    gone.stop()  # offline: not asked, and the summary says it was skipped
    r = lw(outside, "run", "--all", "echo", "everyone")
    assert r.returncode == 0, r.stderr
    expected = [a.device for a in inside] + [outside.device]
    assert sorted(lines(r.stdout)) == sorted(f"{d}: everyone" for d in expected)
    assert gone.device not in r.stdout.decode()
    assert f"skipped 1 offline: {gone.device}" in r.stderr.decode()  # SPEC §10: said, not run
    assert "4 targeted: 4 ok" in r.stderr.decode()


def test_all_with_nobody_online_is_255(agent):
    a = agent()
    a.stop()
    r = lw(a, "run", "--all", "echo")
    assert r.returncode == 255
    assert b"no device is online" in r.stderr


# --------------------------------------------------------------------------- ls, runs


def test_ls_json_and_table(agent):
    a = agent(commands={"echo": ECHO, "cat": CAT}, config={"groups": ["g1"]})
    b = agent(commands={"echo": ECHO})
    b.stop()
    t0 = time.monotonic()
    docs = json.loads(lw(a, "ls", "--json").stdout)
    assert time.monotonic() - t0 < 4 * SLOWDOWN
    by_name = {d["device"]: d for d in docs}
    assert set(by_name) == {a.device, b.device}
    assert by_name[a.device]["status"] == "online"
    assert by_name[b.device]["status"] == "offline"
    assert set(by_name[a.device]["commands"]) == {"echo", "cat"}
    assert by_name[a.device]["groups"] == ["g1"]
    assert by_name[a.device]["runs"]["active"] == 0
    assert isinstance(by_name[a.device]["version"], str)

    table = lines(lw(a, "ls").stdout)
    assert table[0].split() == ["NAME", "STATUS", "VERSION", "RUNS", "COMMANDS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[a.device][1] == "online" and rows[a.device][4] == "cat,echo"
    assert rows[b.device][1] == "offline" and rows[b.device][3] == "-"
    assert "\x1b[" not in "\n".join(table)  # no colour into a pipe


def test_ls_with_no_devices(agent):
    a = agent(start=False)
    r = lw(a, "ls", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout) == []


def test_runs_newest_first(agent, prog):
    p = prog("three.sh", "exit 3\n")
    a = agent(commands={"echo": ECHO, "three": {"exec": [p]}, "sleep": SLEEP})
    first, second = unique("first"), unique("second")
    assert lw(a, "run", "--id", first, a.device, "echo", "x").returncode == 0
    time.sleep(0.05)
    assert lw(a, "run", "--id", second, a.device, "three").returncode == 3
    docs = json.loads(lw(a, "runs", a.device, "--json").stdout)
    assert [d["run"] for d in docs] == [second, first]
    table = lines(lw(a, "runs", a.device).stdout)
    assert table[0].split() == ["RUN", "COMMAND", "STATE", "EXIT", "STARTED", "DURATION"]
    assert table[1].split()[:4] == [second, "three", "exited", "3"]
    assert table[2].split()[:4] == [first, "echo", "exited", "0"]
    r = lw(a, "runs", unique("ghost"))
    assert r.returncode == 255


# --------------------------------------------------------------------------- watch


def test_watch_a_run_until_it_ends(agent, prog):
    p = prog("slow.sh", "echo first\nread x\necho \"second $x\"\nexit 4\n")
    a = agent(commands={"slow": {"exec": [p]}})
    rid = unique("w")
    runner = spawn(a, "run", "--id", rid, a.device, "slow", stdin=subprocess.PIPE)
    assert read_line(runner) == b"first"
    watcher = spawn(a, "watch", a.device, rid)
    time.sleep(0.8 * SLOWDOWN)  # the watcher has subscribed (bounded collection: <= 2 s)
    runner.stdin.write(b"now\n")
    runner.stdin.close()
    runner.stdin = None  # communicate() must not flush it again
    status, out, err = finish(watcher)
    assert status == 4, err
    assert out == b"first\nsecond now\n"  # from the first line the agent holds (SPEC §12)
    assert finish(runner)[0] == 4


def test_watch_a_run_that_already_ended(agent):
    a = agent(commands={"echo": ECHO})
    rid = unique("done")
    lw(a, "run", "--id", rid, a.device, "echo", "x")
    r = lw(a, "watch", a.device, rid)
    assert r.returncode == 0
    assert r.stdout == b"x\n"  # its kept output, then its end (SPEC §12)
    assert b"already ended" in r.stderr
    r = lw(a, "watch", "--new", a.device, rid)
    assert r.returncode == 0 and r.stdout == b""


def test_watch_a_command_shows_last_then_follows(agent):
    a = agent(commands={"echo": ECHO})
    assert lw(a, "run", a.device, "echo", "before").returncode == 0
    watcher = spawn(a, "watch", a.device, "echo")
    assert read_line(watcher) == b"before"  # the retained newest line
    assert lw(a, "run", a.device, "echo", "after").returncode == 0
    assert read_line(watcher) == b"after"
    watcher.send_signal(signal.SIGINT)
    status, out, err = finish(watcher)
    assert status == 130


def test_watch_unknown_is_255(agent):
    a = agent()
    r = lw(a, "watch", a.device, unique("nothing"))
    assert r.returncode == 255
    assert b"no command or run" in r.stderr
