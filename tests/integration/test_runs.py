"""SPEC §2 (out/err/in/eof/signal, line rules), §4 (run state) and §5 (processes:
process groups, the kill ladder, environment, user, stdin/stderr modes)."""

import os
import time

import pytest

from harness import ISO_RE, SLOWDOWN, pid_alive, unique, wait_until, zombie_children

STUBBORN = "trap 'echo term' TERM\necho ready\nwhile :; do sleep 0.05; done\n"
POLITE = "trap 'echo bye; exit 0' TERM\necho ready\nwhile :; do sleep 0.05; done\n"


def check_running_doc(doc, run, command, args, pid=None):
    assert doc["run"] == run and doc["command"] == command and doc["args"] == args, doc
    assert doc["state"] == "running"
    assert isinstance(doc["pid"], int) and doc["pid"] > 1
    if pid is not None:
        assert doc["pid"] == pid
    assert ISO_RE.match(doc["started"]), doc["started"]
    assert doc["transport"] == "mqtt"


def check_final_doc(doc, run, command, args):
    assert doc["run"] == run and doc["command"] == command and doc["args"] == args, doc
    assert ISO_RE.match(doc["started"]) and ISO_RE.match(doc["ended"]), doc
    assert doc["ended"] >= doc["started"]
    assert isinstance(doc["duration_ms"], int) and doc["duration_ms"] >= 0
    for k in ("lines", "err_lines", "dropped"):
        assert isinstance(doc[k], int) and doc[k] >= 0, (k, doc)


# --------------------------------------------------------------------------- output


def test_out_lines_with_seq_and_state_documents(agent):
    """§2: one out message per stdout line with user property seq 1..n, not retained;
    §4: running then exited, retained, with the documented fields; the final state comes
    after every line."""
    a = agent(commands={"count": {"exec": ["/usr/bin/seq", "1"], "args": {"pattern": "[0-9]+", "max": 1}}})
    c = a.client()
    r = c.run("count", args=["5"])
    assert r.out == [b"1", b"2", b"3", b"4", b"5"]
    assert [m.seq for m in r.out_msgs] == [1, 2, 3, 4, 5]
    assert not any(m.retain for m in r.out_msgs)
    states = r.state_msgs
    assert [m.json()["state"] for m in states] == ["running", "exited"], states
    assert all(m.retain for m in states)
    check_running_doc(states[0].json(), r.id, "count", ["5"], r.reply["pid"])
    f = states[1].json()
    check_final_doc(f, r.id, "count", ["5"])
    assert f["exit_code"] == 0 and f["lines"] == 5 and f["err_lines"] == 0 and f["dropped"] == 0
    assert f.get("truncated", False) is False
    assert max(m.index for m in r.out_msgs) < states[1].index
    assert states[0].index < min(m.index for m in r.out_msgs)
    retained = c.fresh_retained(c.topic(f"run/{r.id}/state"))
    assert [m.json()["state"] for m in retained] == ["exited"]


def test_many_lines_in_order(agent):
    a = agent(commands={"seq": {"exec": ["/usr/bin/seq", "1", "1500"]}})
    c = a.client()
    r = c.run("seq", final_timeout=30 * SLOWDOWN)
    assert r.out == [str(i).encode() for i in range(1, 1501)]
    assert [m.seq for m in r.out_msgs] == list(range(1, 1501))
    assert r.final["lines"] == 1500 and r.final["dropped"] == 0


def test_exit_code(agent, prog):
    p = prog("three.sh", "echo out\nexit 3\n")
    a = agent(commands={"three": {"exec": [p]}})
    r = a.client().run("three")
    assert r.final["state"] == "exited" and r.final["exit_code"] == 3
    assert r.out == [b"out"]


def test_stderr_publish(agent, prog):
    """§2: err carries stderr lines with their own seq (stderr: publish, the default)."""
    p = prog("both.sh", "echo e1 >&2\necho o1\necho e2 >&2\necho o2\necho e3 >&2\n")
    a = agent(commands={"both": {"exec": [p]}})
    r = a.client().run("both")
    assert r.out == [b"o1", b"o2"]
    assert r.err == [b"e1", b"e2", b"e3"]
    assert [m.seq for m in r.err_msgs] == [1, 2, 3]
    assert [m.seq for m in r.out_msgs] == [1, 2]
    assert r.final["lines"] == 2 and r.final["err_lines"] == 3
    assert max(m.index for m in r.err_msgs) < r.final_msg().index


def test_stderr_log(agent, prog):
    """§7: stderr: log — to the agent's log, not published."""
    tag = unique("errline")
    p = prog("err.sh", f"echo {tag} >&2\necho out\n")
    a = agent(commands={"err": {"exec": [p], "stderr": "log"}})
    r = a.client().run("err")
    assert r.err == [] and r.out == [b"out"]
    wait_until(lambda: tag in a.log_text(), 3, "the stderr line in the agent's log")


def test_stderr_discard(agent, prog):
    tag = unique("errline")
    p = prog("err.sh", f"echo {tag} >&2\necho out\n")
    a = agent(commands={"err": {"exec": [p], "stderr": "discard"}})
    r = a.client().run("err")
    assert r.err == [] and r.out == [b"out"]
    assert tag not in a.log_text()


@pytest.mark.parametrize("mode", ["publish", "discard"])
def test_lots_of_stderr_before_stdout_does_not_hang(agent, prog, mode):
    """§5: both pipes are read at once: 300 KiB of stderr before any stdout must not block
    (a full stderr pipe hangs an agent that drains stdout first)."""
    p = prog("noisy.py", "import sys\nfor i in range(300):\n    sys.stderr.write('e' * 1023 + '\\n')\n"
                         "sys.stderr.flush()\nprint('done')\n", shebang="/usr/bin/python3")
    a = agent(commands={"noisy": {"exec": [p], "stderr": mode}})
    r = a.client().run("noisy", final_timeout=20 * SLOWDOWN)
    assert r.out == [b"done"]
    assert r.final["state"] == "exited" and r.final["exit_code"] == 0
    if mode == "publish":
        assert len(r.err) == 300 and r.final["err_lines"] == 300
        assert [m.seq for m in r.err_msgs] == list(range(1, 301))


def test_final_line_without_newline(agent):
    """§2: a final line without \\n is still published."""
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "a\\nb"]}})
    r = a.client().run("p")
    assert r.out == [b"a", b"b"] and r.final["lines"] == 2


def test_crlf_stripped(agent):
    """§2: a trailing \\r is removed with the \\n; an inner \\r stays."""
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "x\\r\\ny\\r\\na\\rb\\n\\r\\n"]}})
    r = a.client().run("p")
    assert r.out == [b"x", b"y", b"a\rb", b""]


def test_empty_lines(agent):
    a = agent(commands={"p": {"exec": ["/usr/bin/printf", "a\\n\\nb\\n\\n"]}})
    r = a.client().run("p")
    assert r.out == [b"a", b"", b"b", b""]
    assert [m.seq for m in r.out_msgs] == [1, 2, 3, 4]


def test_non_utf8_bytes_verbatim(agent, prog):
    """§2: output is bytes; a line need not be UTF-8 and is published as written."""
    lines = [b"\xff\xfe\x00bin\x80", b"\xc3\x28 invalid", b"caf\xc3\xa9", b"\x1b[31mred\x1b[0m\t"]
    body = "import sys\nsys.stdout.buffer.write(%r)\n" % (b"\n".join(lines) + b"\n")
    p = prog("bytes.py", body, shebang="/usr/bin/python3")
    a = agent(commands={"bytes": {"exec": [p]}})
    r = a.client().run("bytes")
    assert r.out == lines
    assert r.final["lines"] == 4


# --------------------------------------------------------------------------- stdin


def test_stdin_field_and_eof(agent):
    """§3: `stdin` is written right after start; §2: eof closes stdin."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}})
    c = a.client()
    r = c.run("cat", stdin="first line\nsecond\n", wait=False)
    r.wait_out("second")
    r.eof()
    f = r.wait_final()
    assert f["state"] == "exited" and f["exit_code"] == 0
    assert r.out == [b"first line", b"second"]


def test_in_lines(agent):
    """§2: one in message = one line (a newline is appended); `stdin` text goes first as is."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}})
    c = a.client()
    r = c.run("cat", stdin="abc", wait=False)
    r.send_in("def")
    r.wait_out("abcdef")
    r.send_in("")
    r.send_in("with spaces and \xe9")
    r.send_in(b"\xff\x00raw")
    r.wait_out(b"\xff\x00raw")
    r.eof()
    r.wait_final()
    assert r.out == [b"abcdef", b"", "with spaces and \xe9".encode(), b"\xff\x00raw"]


def test_stdin_false(agent, prog):
    """§2/§7: stdin: false — the child's stdin is at EOF from the start; `in` is refused
    (bad_request), `eof` is a no-op, a start with `stdin` is refused."""
    p = prog("reader.sh", "if read line; then echo \"got $line\"; else echo eof; fi\nexec sleep 30\n")
    a = agent(commands={"r": {"exec": [p], "stdin": False, "kill_grace": "300ms"}})
    c = a.client()
    r = c.run("r", wait=False)
    r.wait_out("eof")
    topic = c.topic(f"run/{r.id}/in")
    mark = c.mark()
    c.publish(topic, "hello")
    ev = c.wait_error(topic, since=mark)
    assert ev["error"]["code"] == "bad_request"
    mark = c.mark()
    r.eof()
    c.assert_none(c.topic("errors"), since=mark, what="an error for eof on a stdin: false run")
    refused = c.start("r", {"stdin": "x\n"})
    assert refused.code == "bad_request"
    c.publish(c.topic("cmd/r/stop"), "")
    assert r.wait_final()["reason"] == "stop"


def test_child_stdin_is_a_pipe(agent):
    """§5: the child's stdin, stdout and stderr are pipes; no other descriptor leaks in."""
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"], "kill_grace": "300ms"}})
    c = a.client()
    r = c.run("sleep", wait=False)
    pid = r.reply["pid"]
    r.wait_state("running")
    fds = sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd"))
    assert fds == [0, 1, 2], f"child has descriptors {fds}: {[os.readlink(f'/proc/{pid}/fd/{x}') for x in fds]}"
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"), fd
    r.signal("KILL")
    r.wait_final()


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("name,expect", [("TERM", "TERM"), ("SIGINT", "INT"), ("KILL", "KILL"),
                                         ("SIGUSR1", "USR1"), ("HUP", "HUP")])
def test_signal_ends_run(agent, name, expect):
    """§2: a signal name (SIG prefix allowed); a signal that ends the process: killed,
    reason `signal`."""
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"]}})
    c = a.client()
    r = c.run("sleep", wait=False)
    r.wait_state("running")
    r.signal(name)
    f = r.wait_final()
    assert f["state"] == "killed" and f["signal"] == expect and f["reason"] == "signal", f


def test_signal_is_just_that_signal(agent, prog):
    """§5: a `signal` request sends just that signal: a program that traps it goes on (no
    KILL follows after kill_grace)."""
    p = prog("stubborn.sh", STUBBORN)
    a = agent(commands={"s": {"exec": [p], "kill_grace": "200ms"}})
    c = a.client()
    r = c.run("s", wait=False)
    r.wait_out("ready")
    r.signal("TERM")
    r.wait_out("term")
    c.assert_none(f"{r.prefix_topic}/state", since=r.since, duration=1.0,
                  pred=lambda m: m.payload and m.json()["state"] != "running",
                  what="the run ending after a trapped TERM")
    r.signal("SIGKILL")
    f = r.wait_final()
    assert f["state"] == "killed" and f["signal"] == "KILL" and f["reason"] == "signal"


def test_signal_usr1_trapped(agent, prog):
    p = prog("usr.sh", "trap 'echo got-usr1' USR1\necho ready\nwhile :; do sleep 0.05; done\n")
    a = agent(commands={"u": {"exec": [p]}})
    c = a.client()
    r = c.run("u", wait=False)
    r.wait_out("ready")
    r.signal("USR1")
    r.wait_out("got-usr1")
    r.signal("USR2")
    f = r.wait_final()
    assert f["state"] == "killed" and f["signal"] == "USR2" and f["reason"] == "signal"


def test_signal_stop_and_cont(agent):
    """§2: STOP and CONT."""
    a = agent(commands={"cat": {"exec": ["/bin/cat"]}})
    c = a.client()
    r = c.run("cat", wait=False)
    r.wait_state("running")
    r.signal("STOP")
    pid = r.reply["pid"]
    wait_until(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T", 3,
               "the run to be stopped")
    r.send_in("while stopped")
    c.assert_none(f"{r.prefix_topic}/out", since=r.since, duration=0.5)
    r.signal("SIGCONT")
    r.wait_out("while stopped")
    r.eof()
    f = r.wait_final()
    assert f["state"] == "exited" and f["exit_code"] == 0


def test_signal_reaches_the_process_group(agent, prog, tmp_path):
    """§5: each run is its own process group; a signal goes to the whole group."""
    p = prog("family.sh", "sleep 30 &\necho $!\nwait\n")
    a = agent(commands={"family": {"exec": [p]}})
    c = a.client()
    r = c.run("family", wait=False)
    out = c.wait_msg(f"{r.prefix_topic}/out", since=r.since)
    child = int(out.payload)
    pid = r.reply["pid"]
    assert os.getpgid(pid) == pid, "the run is not its own process group leader"
    assert os.getpgid(child) == pid
    assert os.getpgid(pid) != os.getpgid(a.pid)
    r.signal("KILL")
    f = r.wait_final()
    assert f["state"] == "killed" and f["signal"] == "KILL"
    wait_until(lambda: not pid_alive(child), 3, "the grandchild to be killed with its group")


def test_stop_kills_the_process_group(agent, prog):
    p = prog("family.sh", "sleep 30 &\necho $!\nwait\n")
    a = agent(commands={"family": {"exec": [p], "kill_grace": "300ms"}})
    c = a.client()
    r = c.run("family", wait=False)
    child = int(c.wait_msg(f"{r.prefix_topic}/out", since=r.since).payload)
    c.publish(c.topic("cmd/family/stop"), "")
    assert r.wait_final()["reason"] == "stop"
    wait_until(lambda: not pid_alive(child), 3, "the grandchild to be killed with its group")


def test_output_held_by_grandchild_does_not_hold_the_run(agent, prog):
    """A descendant that keeps stdout open after the run's process exits: the run still ends
    (the agent kills the group) and the grandchild is gone."""
    p = prog("leak.sh", "sleep 30 &\necho $!\nexit 0\n")
    a = agent(commands={"leak": {"exec": [p]}})
    c = a.client()
    r = c.run("leak", final_timeout=10 * SLOWDOWN)
    child = int(r.out[0])
    assert r.final["state"] in ("exited", "killed"), r.final
    wait_until(lambda: not pid_alive(child), 3, "the grandchild to be gone")


# --------------------------------------------------------------------------- timeouts


def test_timeout_kills_with_term(agent):
    """§5: a timeout sends TERM; final state killed, reason timeout."""
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"], "timeout": "500ms"}})
    r = a.client().run("sleep")
    f = r.final
    assert f["state"] == "killed" and f["reason"] == "timeout" and f["signal"] == "TERM", f
    assert 400 <= f["duration_ms"] <= 3000 * SLOWDOWN, f


def test_timeout_ladder_kill_after_grace(agent, prog):
    """§5: TERM, then KILL after kill_grace for a program that traps TERM and keeps going."""
    p = prog("stubborn.sh", STUBBORN)
    a = agent(commands={"s": {"exec": [p], "timeout": "500ms", "kill_grace": "300ms"}})
    r = a.client().run("s")
    f = r.final
    assert f["state"] == "killed" and f["reason"] == "timeout" and f["signal"] == "KILL", f
    assert 750 <= f["duration_ms"] <= 4000 * SLOWDOWN, f
    assert b"term" in r.out


def test_agent_kill_reason_wins_when_program_exits_on_term(agent, prog):
    """Decided: when the agent initiated the kill, the final state is killed with that reason
    even if the program caught the signal and exited."""
    p = prog("polite.sh", POLITE)
    a = agent(commands={"p": {"exec": [p], "timeout": "500ms", "kill_grace": "2s"}})
    r = a.client().run("p")
    f = r.final
    assert f["state"] == "killed" and f["reason"] == "timeout" and f["signal"] == "TERM", f
    assert r.out == [b"ready", b"bye"]


def test_request_timeout_shortens(agent):
    """§3: `timeout` (seconds, fractional allowed) shortens the configured timeout."""
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"], "timeout": "20s"}})
    r = a.client().run("sleep", timeout=0.5)
    assert r.final["reason"] == "timeout" and r.final["duration_ms"] < 5000, r.final


def test_request_timeout_without_configured_timeout(agent):
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"]}})
    r = a.client().run("sleep", timeout=1)
    assert r.final["reason"] == "timeout", r.final
    assert 800 <= r.final["duration_ms"] < 5000


def test_request_timeout_never_lengthens(agent):
    a = agent(commands={"sleep": {"exec": ["/bin/sleep", "30"], "timeout": "600ms"}})
    r = a.client().run("sleep", timeout=30)
    assert r.final["reason"] == "timeout", r.final
    assert r.final["duration_ms"] < 4000 * SLOWDOWN, r.final


# --------------------------------------------------------------------------- process setup


def test_environment(agent):
    """§5: nothing inherited but PATH, HOME, LANG, plus PYTHONUNBUFFERED=1, the command's env
    and LINEWIRE_*."""
    a = agent(commands={"env": {"exec": ["/usr/bin/env"], "env": {"LEVEL": "debug"}}},
              env={"SECRET": "x", "LC_ALL": "C", "TERM": "xterm", "USER": "someone"})
    r = a.client().run("env")
    env = dict(line.decode().split("=", 1) for line in r.out)
    assert set(env) == {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "LEVEL", "LINEWIRE_DEVICE",
                        "LINEWIRE_COMMAND", "LINEWIRE_RUN", "LINEWIRE_TRANSPORT"}, env
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == a.env["PATH"] and env["HOME"] == a.env["HOME"]
    assert env["LANG"] == "C.UTF-8"
    assert env["LEVEL"] == "debug"
    assert env["LINEWIRE_DEVICE"] == a.device
    assert env["LINEWIRE_COMMAND"] == "env"
    assert env["LINEWIRE_RUN"] == r.id
    assert env["LINEWIRE_TRANSPORT"] == "mqtt"


def test_environment_only_what_is_set(agent):
    """Decided: PATH, HOME, LANG only when they are set in the agent's environment."""
    a = agent(commands={"env": {"exec": ["/usr/bin/env"]}}, base_env=False,
              env={"PATH": "/usr/bin:/bin", "SECRET": "x"})
    r = a.client().run("env")
    names = {line.decode().split("=", 1)[0] for line in r.out}
    assert names == {"PATH", "PYTHONUNBUFFERED", "LINEWIRE_DEVICE", "LINEWIRE_COMMAND",
                     "LINEWIRE_RUN", "LINEWIRE_TRANSPORT"}, names


def test_a_python_script_prints_live(agent, prog):
    """§5: a Python script that prints and sleeps (the most common program on a Pi) is seen
    line by line as it prints, not all at its exit: Python buffers a pipe unless
    PYTHONUNBUFFERED is set, which the agent does (a command's env may turn it off)."""
    p = prog("ticker.py", "import time\nfor i in range(3):\n    print(i)\n    time.sleep(1)\n",
             shebang="/usr/bin/python3")
    a = agent(commands={"tick": {"exec": [p]},
                        "tick_buffered": {"exec": [p], "env": {"PYTHONUNBUFFERED": ""}}})
    c = a.client()
    r = c.run("tick", wait=False)
    r.wait_out("0", timeout=5)
    assert r.final is None, "the first line came only at exit"
    assert r.wait_final()["state"] == "exited" and r.out == [b"0", b"1", b"2"]
    # The control: with it turned off the first line comes only at the exit, 2 s later.
    t0 = time.monotonic()
    r = c.run("tick_buffered", wait=False)
    r.wait_out("0", timeout=10)
    assert time.monotonic() - t0 >= 1.8, "buffered output arrived before the script ended"
    assert r.wait_final()["state"] == "exited"


# Programs that write a pipe in blocks but a terminal line by line: Perl (perl-base is
# Essential in Debian) and C stdio (GNU sed). Both copy their stdin to their stdout.
BUFFERING = {
    "perl": ["/usr/bin/perl", "-ne", "print"],
    "sed": ["/bin/sed", "-e", ""],
}


@pytest.mark.parametrize("kind", sorted(BUFFERING))
def test_tty_a_program_that_buffers_a_pipe_prints_live(agent, kind):
    """§5: with `tty: true` the program's stdout is a pseudo-terminal, so a program that
    buffers a pipe prints each line as it prints it. The program runs until `eof`, so a
    line that arrives before the eof was published as printed, not at the exit. The
    control: the same program with `tty` false (the default) says nothing until the eof
    ends it."""
    argv = BUFFERING[kind]
    a = agent(commands={"copy": {"exec": argv, "tty": True}, "copy_pipe": {"exec": argv}})
    c = a.client()
    r = c.run("copy", wait=False)
    r.send_in("one")
    r.wait_out("one", timeout=5 * SLOWDOWN)
    r.send_in("two")
    r.wait_out("two", timeout=5 * SLOWDOWN)
    assert r.final is None
    r.eof()
    final = r.wait_final()
    assert final["state"] == "exited" and final["exit_code"] == 0, final
    assert r.out == [b"one", b"two"] and [m.seq for m in r.out_msgs] == [1, 2]

    r = c.run("copy_pipe", wait=False)
    r.send_in("one")
    c.assert_none(f"{r.prefix_topic}/out", since=r.since, duration=1.5,
                  what="a line from a program buffering its pipe before its exit")
    r.eof()
    assert r.wait_final()["exit_code"] == 0 and r.out == [b"one"]


def test_tty_is_stdout_only_with_term_dumb(agent, prog):
    """§5: with `tty: true` only stdout is the terminal (80x24, raw): stdin stays a pipe
    (`in` and `eof` work as ever) and stderr a pipe of its own (its lines on err). Lines
    read as from a pipe: no \\r is added ('cr\\r\\n' is the line 'cr', where a terminal's
    \\n -> \\r\\n would make it 'cr\\r'). TERM=dumb, unless the command's env sets it;
    PYTHONUNBUFFERED=1 as on pipes. Without tty, no TERM at all."""
    p = prog("probe.sh", '[ -t 1 ] && echo "stdout tty"\n'
                         '[ -t 0 ] || echo "stdin pipe"\n'
                         '[ -t 2 ] || echo "stderr pipe" >&2\n'
                         'echo "TERM=${TERM-unset} PYTHONUNBUFFERED=$PYTHONUNBUFFERED"\n'
                         '[ -t 1 ] && printf "size=" && stty size <&1\n'
                         'printf "cr\\r\\n"\n'
                         'cat\n'
                         'echo done\n')
    a = agent(commands={"probe": {"exec": [p], "tty": True},
                        "probe_xterm": {"exec": [p], "tty": True, "env": {"TERM": "xterm"}},
                        "probe_pipe": {"exec": [p]}})
    c = a.client()
    expected = {
        "probe": [b"stdout tty", b"stdin pipe", b"TERM=dumb PYTHONUNBUFFERED=1", b"size=24 80",
                  b"cr", b"typed", b"done"],
        "probe_xterm": [b"stdout tty", b"stdin pipe", b"TERM=xterm PYTHONUNBUFFERED=1",
                        b"size=24 80", b"cr", b"typed", b"done"],
        "probe_pipe": [b"stdin pipe", b"TERM=unset PYTHONUNBUFFERED=1", b"cr", b"typed",
                       b"done"],
    }
    for command, lines in expected.items():
        r = c.run(command, wait=False)
        r.send_in("typed")
        r.eof()
        final = r.wait_final()
        assert final["state"] == "exited" and final["exit_code"] == 0, (command, final)
        assert r.out == lines, command
        assert r.err == [b"stderr pipe"], command


def test_tty_runs_leak_no_descriptor(agent):
    """§5: no leaked file descriptors, with a pseudo-terminal too: after 40 tty runs the
    agent holds as many descriptors as before them."""
    a = agent(commands={"t": {"exec": ["/bin/echo", "x"], "tty": True}})
    c = a.client()
    assert c.run("t").out == [b"x"]  # warm up
    time.sleep(0.5)
    before = len(os.listdir(f"/proc/{a.pid}/fd"))
    for _ in range(40):
        r = c.run("t")
        assert r.final["exit_code"] == 0 and r.out == [b"x"]
    wait_until(lambda: len(os.listdir(f"/proc/{a.pid}/fd")) <= before, 5 * SLOWDOWN,
               "the agent's descriptors back to their count before the runs")
    assert zombie_children(a.pid) == []


def test_cwd(agent, tmp_path):
    d = tmp_path / "workdir"
    d.mkdir()
    a = agent(commands={"pwd": {"exec": ["/bin/pwd"], "cwd": str(d)}})
    r = a.client().run("pwd")
    assert r.out == [os.path.realpath(d).encode()]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_nobody(agent):
    """§5: `user` runs the child as that user."""
    a = agent(commands={"id": {"exec": ["/usr/bin/id", "-u"], "user": "nobody", "cwd": "/"}})
    r = a.client().run("id")
    assert r.out == [b"65534"], r.out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_and_group(agent):
    import grp
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        pytest.skip("no group nogroup")
    a = agent(commands={"id": {"exec": ["/usr/bin/id"], "user": "nobody", "group": "nogroup",
                               "cwd": "/"}})
    r = a.client().run("id")
    text = r.out[0].decode()
    assert text.startswith("uid=65534(") and f"gid={gid}(" in text, text
    assert "groups=" not in text or "(root)" not in text.split("groups=")[1], \
        f"supplementary groups of root kept: {text}"


def test_spawn_failure(agent, prog):
    """Decided: a spawn failure replies spawn_failed AND publishes a failed state (with
    `error`) for the run id."""
    p = prog("vanishing.sh", "echo hi\n")
    a = agent(commands={"v": {"exec": [p]}})
    os.unlink(p)
    c = a.client()
    rid = unique("r")
    r = c.run("v", id=rid, wait=False, expect_ok=False)
    assert r.reply.code == "spawn_failed", r.reply
    st = r.wait_final()
    assert st["state"] == "failed" and st["run"] == rid and st["command"] == "v", st
    assert isinstance(st["error"], str) and st["error"], st
    assert r.final_msg().retain
    # The agent is fine afterwards.
    assert c.run("v", wait=False, expect_ok=False).reply.code == "spawn_failed"


def test_no_zombies_and_no_descriptor_leak(agent):
    """§5: no zombies, no leaked descriptors: after 30 runs the agent has no zombie children
    and no more open descriptors than after the first."""
    a = agent(commands={"t": {"exec": ["/bin/echo", "x"]}, "f": {"exec": ["/bin/false"]}})
    c = a.client()
    c.run("t")
    before = len(os.listdir(f"/proc/{a.pid}/fd"))
    for i in range(15):
        c.run("t")
        c.run("f")
    time.sleep(0.3)
    assert zombie_children(a.pid) == []
    after = len(os.listdir(f"/proc/{a.pid}/fd"))
    assert after <= before + 4, f"descriptors {before} -> {after}"


# --------------------------------------------------------------------------- retained states


def test_keep_runs(agent):
    """§4: the agent keeps the retained states of the newest keep_runs finished runs;
    older ones are cleared (empty retained message)."""
    a = agent(config={"keep_runs": 2})
    c = a.client()
    c.subscribe(c.topic("run/+/state"))
    runs = [c.run("echo").id for _ in range(4)]
    for rid in runs[:2]:
        c.wait_msg(c.topic(f"run/{rid}/state"), lambda m: m.payload == b"",
                   what=f"the state of {rid} to be cleared")
    retained = c.fresh_retained(c.topic("run/+/state"))
    assert sorted(m.json()["run"] for m in retained) == sorted(runs[2:])


def test_state_message_expiry(agent):
    """§4: with MQTT 5 the states carry a message expiry of run_state_ttl (default 1 day)."""
    a = agent()
    r = a.client().run("echo")
    m = r.final_msg()
    assert m.expiry is not None and 86400 - 60 <= m.expiry <= 86400, m.expiry
    a2 = agent(config={"run_state_ttl": "1h"})
    r2 = a2.client().run("echo")
    assert r2.final_msg().expiry is not None and 3600 - 60 <= r2.final_msg().expiry <= 3600


def test_state_expires_after_ttl(agent):
    a = agent(config={"run_state_ttl": "1s"})
    c = a.client()
    r = c.run("echo")
    time.sleep(2.2)
    assert c.fresh_retained(c.topic(f"run/{r.id}/state"), timeout=0.7) == []
