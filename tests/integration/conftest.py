"""Fixtures of the integration suite: a private mosquitto per test, linewired agents
started against it, and test programs. See harness.py for the pieces."""

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import LINEWIRED, Agent, Broker, script  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs root (user switching)")
    config.addinivalue_line("markers", "long: waits out a long outage (CI runs it too)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session", autouse=True)
def _agent_binary():
    if not os.path.exists(LINEWIRED):
        pytest.exit(f"linewired not found at {LINEWIRED} (set LINEWIRED)", returncode=2)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture
def make_broker(tmp_path, request):
    """Factory: make_broker(extra=[...], anonymous=True) starts another mosquitto."""
    brokers = []

    def factory(extra=(), anonymous=True, port=None):
        b = Broker(tmp_path / f"broker{len(brokers)}", port=port, extra=extra, anonymous=anonymous,
                   name="mosquitto")
        brokers.append(b)
        return b.start()

    yield factory
    # A broker that ended while the test ran, without the test stopping it, was ended by
    # something else on the machine (its log then ends with "terminating"): say so, it
    # explains every failure after it.
    died = [(b, b.proc.poll()) for b in brokers
            if b.proc is not None and b.proc.poll() is not None]
    for b in brokers:
        b.kill()
    if _failed(request):
        for b in brokers:
            print(f"----- {b.log_path}\n{b.log_text()[-6000:]}")
        for b, rc in died:
            print(f"----- mosquitto on port {b.port} ended during the test (exit {rc}), "
                  "and the test did not stop it")


@pytest.fixture
def broker(make_broker):
    """A plain anonymous mosquitto on a free loopback port."""
    return make_broker()


@pytest.fixture
def agent(broker, tmp_path, request):
    """Factory: agent(commands={...}, config={...}, env={...}, broker=B, wait_online=True)
    writes the YAML config and starts linewired; at teardown it is sent SIGTERM and must
    exit 0 and leave no process behind."""
    agents = []

    def factory(commands=None, *, broker=broker, wait_online=True, start=True, **kw):
        a = Agent(tmp_path / f"agent{len(agents)}", broker, commands, **kw)
        agents.append(a)
        if start:
            a.start(wait_online=wait_online)
        return a

    yield factory
    problems = []
    for a in agents:
        problems += a.teardown()
    if _failed(request) or problems:
        for a in agents:
            try:
                print(f"----- {a.log_path} (last lines)\n{a.log_tail(120)}")
            except OSError:
                pass
    if problems:
        pytest.fail("agent teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def prog(tmp_path):
    """prog(name, body, shebang='/bin/sh') writes an executable test program into tmp_path."""
    d = tmp_path / "progs"
    d.mkdir(exist_ok=True)

    def factory(name, body, shebang="/bin/sh"):
        return script(d, name, body, shebang)

    return factory


def need_openssl():
    path = shutil.which("openssl")
    if not path:
        pytest.skip("openssl is not installed")
    return path


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    openssl = need_openssl()
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args):
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj",
        "/CN=linewire test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    run("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=linewired")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.crt", "-days", "2", "-extfile", "client.ext")
    for f in ("server.key", "client.key"):
        os.chmod(d / f, 0o644)  # mosquitto may drop privileges before reading it
    return d


LW_COMMANDS = {
    "echo": {"exec": ["/bin/echo", "hi"]},
    "num": {"exec": ["/bin/echo"], "args": {"pattern": "[0-9]{1,3}", "max": 2}},
    "say": {"exec": ["/usr/bin/printf", "%s\\n"], "args": {"pattern": ".*", "max": 8}},
    "cat": {"exec": ["/bin/cat"], "kill_grace": "300ms"},
    "touch": {"exec": ["/usr/bin/touch", "{marker}"]},
}


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory):
    """One agent (and broker) for a whole module of refusal tests: every refusal must leave
    it as it was, so sharing it costs nothing but start-up time. `marker` is a file no
    command may ever create."""
    d = tmp_path_factory.mktemp("shared")
    marker = d / "pwned"
    cmds = {k: dict(v) for k, v in LW_COMMANDS.items()}
    cmds["touch"]["exec"] = ["/usr/bin/touch", str(marker)]
    b = Broker(d / "broker", name="mosquitto").start()
    a = Agent(d / "agent", b, cmds)
    a.marker = marker
    try:
        a.start()
        yield a
    finally:
        problems = a.teardown()
        b.kill()
        if problems:
            print(f"----- {a.log_path} (last lines)\n{a.log_tail(120)}")
            pytest.fail("shared agent teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def lw(shared_agent, request):
    """A client of the shared agent (c.agent, c.marker), with c.spy: a second client that
    watches run/+/state (a separate connection, since overlapping subscriptions on one
    client would deliver a state twice)."""
    a = shared_agent
    c = a.client()
    c.spy = a.client(name="spy")
    c.spy.subscribe(c.topic("run/+/state"), retained=False)
    c.marker = a.marker
    c.agent = a
    yield c
    c.close()
    c.spy.close()
    if _failed(request):
        print(f"----- {a.log_path} (last lines)\n{a.log_tail(60)}")
