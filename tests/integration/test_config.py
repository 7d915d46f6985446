"""SPEC §7 (configuration) and the command line: --check-config, --version, the extra
keys, relative paths, defaults of §1 (prefix, device)."""

import os
import re
import socket
import subprocess
import textwrap

import pytest
import yaml

from harness import LINEWIRED, NAME_RE, SLOWDOWN, Client, unique

PROBLEM_RE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def check_config(path, *extra):
    return subprocess.run([LINEWIRED, "--config", str(path), "--check-config", *extra],
                          capture_output=True, text=True, timeout=20 * SLOWDOWN)


def write(tmp_path, text, name="linewire.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def problems(result, path):
    found = []
    for line in result.stderr.splitlines():
        m = PROBLEM_RE.match(line)
        if m and os.path.basename(m["file"]) == os.path.basename(str(path)):
            found.append((int(m["line"]), int(m["col"]), m["msg"]))
    return found


FULL_VALID = """
device: pi-kitchen
prefix: site-a/linewire
groups: [kitchen, sensors]
log_level: info
run_state_ttl: 1h
state_dir: ./state
broker:
  url: mqtt://127.0.0.1:1
  protocol: 5
  username: pi-kitchen
  password_file: ./password
  keepalive: 30s
  session_expiry: 5m
  client_id: linewired-pi-kitchen
  reconnect: {min: 500ms, max: 1m}
qos: 1
keep_runs: 100
limits: {max_runs: 32, max_payload: 64KiB, max_line: 64KiB, buffer: 8MiB}
commands:
  uptime:
    exec: [/usr/bin/uptime]
  count:
    exec: [/bin/echo]
    cwd: /tmp
    env: {LEVEL: debug}
    args: {pattern: '[0-9]{1,3}', max: 1}
    timeout: 30s
    kill_grace: 5s
    max_instances: 2
    on_busy: queue
    queue_max: 4
    max_output: 16MiB
    stdin: true
    tty: false
    stderr: publish
    retain_last: true
    overflow: block
    transports: [mqtt]
  quiet:
    exec: [/bin/true]
    stdin: false
    tty: true
    stderr: discard
    retain_last: false
    overflow: drop
    on_busy: replace
    max_instances: 1
    timeout: 500ms
  logged:
    exec: [/bin/true]
    stderr: log
    on_busy: reject
  temperature:
    exec: [/bin/cat]
    mode: service
    restart_delay: 5s
"""


def test_check_config_accepts_a_valid_config(tmp_path):
    """§7: --check-config validates and exits 0 (every documented key, durations 500ms/30s/
    5m/1h, sizes 64KiB/8MiB, and the extra keys log_level, run_state_ttl, state_dir,
    broker.session_expiry/client_id/reconnect, queue_max). It does not connect."""
    (tmp_path / "password").write_text("secret\n")
    path = write(tmp_path, FULL_VALID)
    r = check_config(path)
    assert r.returncode == 0, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert problems(r, path) == []


def test_check_config_takes_the_file_as_its_argument(tmp_path):
    """`linewired --check-config FILE` checks FILE (no --config needed); a second, different
    file given with --config is refused rather than one of them silently ignored."""
    (tmp_path / "password").write_text("secret\n")
    path = write(tmp_path, FULL_VALID)
    r = subprocess.run([LINEWIRED, "--check-config", str(path)], capture_output=True, text=True,
                       timeout=20 * SLOWDOWN)
    assert r.returncode == 0 and str(path) in r.stdout, r.stderr
    bad = write(tmp_path, "device: [\n", name="bad.yaml")
    r = subprocess.run([LINEWIRED, "--check-config", str(bad)], capture_output=True, text=True,
                       timeout=20 * SLOWDOWN)
    assert r.returncode == 2 and "bad.yaml" in r.stderr, r.stderr
    r = subprocess.run([LINEWIRED, "--config", str(bad), "--check-config", str(path)],
                       capture_output=True, text=True, timeout=20 * SLOWDOWN)
    assert r.returncode == 2 and "two configuration files" in r.stderr, r.stderr


def test_check_config_accepts_mqtt_311(tmp_path):
    path = write(tmp_path, """
        device: d1
        broker: {url: 'mqtt://127.0.0.1:1', protocol: 3.1.1}
        commands:
          a: {exec: [/bin/true]}
        """)
    r = check_config(path)
    assert r.returncode == 0, r.stderr


def test_check_config_reports_every_problem_with_line_and_column(tmp_path):
    """§7: every problem with its line and column, exit 2; an unknown key is an error."""
    path = write(tmp_path, """
        device: lwcheck
        prefix: lwtest
        brokr:
          url: mqtt://127.0.0.1:1
        commands:
          good:
            exec: [/bin/echo]
            timeout: 5 parsecs
            tiemout: 5s
            on_busy: maybe
          other:
            exec: [/bin/echo]
            max_output: lots
        limits: {max_line: 12 bananas}
        """)
    # line numbers (1-based) and the key's column / the value's column
    expected = {
        3: (1, 1),      # brokr: unknown key
        8: (5, 14),     # timeout: 5 parsecs
        9: (5, 14),     # tiemout: unknown key
        10: (5, 14),    # on_busy: maybe
        13: (5, 17),    # max_output: lots
        14: (10, 20),   # limits.max_line: 12 bananas
    }
    r = check_config(path)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    found = problems(r, path)
    by_line = {}
    for line, col, msg in found:
        by_line.setdefault(line, []).append((col, msg))
    for line, cols in expected.items():
        assert line in by_line, f"no problem reported for line {line}; stderr:\n{r.stderr}"
        assert any(col in cols for col, _ in by_line[line]), \
            f"line {line}: column {by_line[line]} is neither the key's nor the value's {cols}"
    unexpected = set(by_line) - set(expected)
    assert not unexpected, f"problems reported on lines {unexpected}:\n{r.stderr}"
    # The typo is named, so the user can find it.
    assert any("tiemout" in msg for _, msg in by_line[9]), r.stderr
    assert any("brokr" in msg for _, msg in by_line[3]), r.stderr


def test_check_config_reports_bad_names(tmp_path):
    """§1: device, command and group names must match the name pattern."""
    path = write(tmp_path, """
        device: "bad/device"
        groups: [ok, "bad+group"]
        broker: {url: 'mqtt://127.0.0.1:1'}
        commands:
          "bad#command":
            exec: [/bin/true]
          .hidden:
            exec: [/bin/true]
        """)
    r = check_config(path)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    lines = {line for line, _, _ in problems(r, path)}
    assert {1, 2, 5, 7} <= lines, f"expected problems on lines 1, 2, 5, 7:\n{r.stderr}"


def test_check_config_reports_yaml_syntax_errors(tmp_path):
    path = write(tmp_path, """
        device: d1
        commands:
          a: {exec: [/bin/true]
        broker: {url: 'mqtt://127.0.0.1:1'}
        """)
    r = check_config(path)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert problems(r, path), f"no FILE:LINE:COLUMN: message line:\n{r.stderr}"


def test_check_config_bad_values(tmp_path):
    """Wrong types and values: each is reported (exit 2), on its own line."""
    path = write(tmp_path, """
        device: d1
        broker:
          url: 'mqtt://127.0.0.1:1'
          protocol: 4
          keepalive: soon
        qos: 3
        keep_runs: many
        commands:
          a:
            exec: []
          b:
            exec: [/bin/true]
            args: {pattern: '[', max: 1}
          c:
            exec: [/bin/true]
            stderr: screen
            mode: daemon
            tty: sometimes
        """)
    r = check_config(path)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    lines = {line for line, _, _ in problems(r, path)}
    assert (18, 10, "commands.c.tty: expected true or false, got 'sometimes'") in \
        problems(r, path), r.stderr
    for expected in (4, 5, 6, 7, 10, 13, 16, 17, 18):
        assert expected in lines, f"no problem reported for line {expected}:\n{r.stderr}"


def test_check_config_missing_file(tmp_path):
    r = check_config(tmp_path / "nope.yaml")
    assert r.returncode != 0
    assert r.stderr.strip(), "a missing config file must be reported"


def test_version():
    r = subprocess.run([LINEWIRED, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr), r.stdout


def test_invalid_config_does_not_start(tmp_path, broker):
    """A config with a problem never gets as far as the broker: the agent exits non-zero
    with the problem's line, and publishes nothing."""
    device = unique("d")
    path = write(tmp_path, f"""
        device: {device}
        prefix: lwtest
        broker: {{url: 'mqtt://127.0.0.1:{broker.port}'}}
        commands:
          a: {{exec: [/bin/true], tiemout: 5s}}
        """)
    watcher = Client(broker.port)
    watcher.subscribe(f"lwtest/{device}/#")
    try:
        r = subprocess.run([LINEWIRED, "--config", str(path)], capture_output=True, text=True,
                           timeout=20 * SLOWDOWN)
        assert r.returncode != 0
        assert problems(r, path) and problems(r, path)[0][0] == 5, r.stderr
        watcher.assert_none(f"lwtest/{device}/#")
    finally:
        watcher.close()


def test_relative_paths_resolve_against_config_dir(agent, tmp_path):
    """exec[0] containing '/' and cwd resolve against the config file's folder, not the
    agent's working directory."""
    a = agent(start=False, commands={
        "where": {"exec": ["./bin/where.sh"], "cwd": "work"},
    })
    os.makedirs(os.path.join(a.dir, "bin"))
    os.makedirs(os.path.join(a.dir, "work"))
    with open(os.path.join(a.dir, "bin", "where.sh"), "w") as f:
        f.write("#!/bin/sh\npwd\n")
    os.chmod(os.path.join(a.dir, "bin", "where.sh"), 0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    a.cwd = str(elsewhere)
    a.start()
    c = a.client()
    r = c.run("where")
    assert r.final["state"] == "exited" and r.final["exit_code"] == 0, r.final
    assert r.out == [os.path.realpath(os.path.join(a.dir, "work")).encode()]


def test_default_prefix_is_linewire(agent):
    """§1: {prefix} defaults to `linewire`."""
    a = agent(start=False, prefix="linewire")
    del a.config["prefix"]
    with open(a.config_path, "w") as f:
        yaml.safe_dump(a.config, f, sort_keys=False)
    a.start()
    msgs = a.watch.fresh_retained(f"linewire/{a.device}/status")
    assert [m.payload for m in msgs] == [b"online"]


def test_prefix_may_contain_slashes(agent):
    """§1: a prefix may contain '/' (site-a/linewire)."""
    a = agent(prefix="site-a/lwtest")
    c = a.client()
    r = c.run("echo")
    assert r.out == [b"hello"]
    assert r.prefix_topic.startswith(f"site-a/lwtest/{a.device}/run/")


def test_default_device_is_host_name(agent):
    """§1: {device} defaults to the host name."""
    host = socket.gethostname()
    if not NAME_RE.match(host):
        pytest.skip(f"host name {host!r} is not a valid device name")
    a = agent(start=False, device=host)
    del a.config["device"]
    with open(a.config_path, "w") as f:
        yaml.safe_dump(a.config, f, sort_keys=False)
    a.start()
    c = a.client()
    assert c.run("echo").out == [b"hello"]
