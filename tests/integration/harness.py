"""Black-box harness for linewired: a private mosquitto, the agent, an MQTT client.

Everything here waits with a bound: nothing blocks forever, so a broken agent makes a
test fail with a message (and the agent's log) instead of hanging the suite.
"""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from procfs import pid_alive, session_members, zombie_children  # noqa: F401 (for the tests)

LINEWIRED = os.environ.get("LINEWIRED", "/work/main/build/linewired")
MOSQUITTO = "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else shutil.which("mosquitto")

# Multiplies every wait, for slow machines (qemu runs): LINEWIRE_TEST_SLOWDOWN=5.
SLOWDOWN = float(os.environ.get("LINEWIRE_TEST_SLOWDOWN", "1"))
WAIT = 10.0 * SLOWDOWN  # the default bound of a positive wait
QUIET = 0.7 * SLOWDOWN  # how long a negative check ("nothing arrives") listens

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
FINAL_STATES = ("exited", "killed", "failed", "lost")

_ids = itertools.count(1)


def unique(prefix="t"):
    """A fresh name that matches SPEC §1's name pattern."""
    return f"{prefix}{os.getpid() % 10000}x{next(_ids)}{uuid.uuid4().hex[:6]}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def script(directory, name, body, shebang="/bin/sh"):
    """Writes an executable test program and returns its absolute path."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(f"#!{shebang}\n{body.lstrip()}")
    os.chmod(path, 0o755)
    return path


def wait_until(pred, timeout=WAIT, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def read_text(path):
    """The text of a log file ("" while there is none)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# --------------------------------------------------------------------------- broker


class Broker:
    """A private mosquitto on a loopback port. `extra` lines go into the listener's
    section (password_file, cafile, ...); `anonymous` sets allow_anonymous."""

    def __init__(self, directory, port=None, extra=(), anonymous=True, name="broker"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.extra = list(extra)
        self.anonymous = anonymous
        self.name = name
        self.proc = None
        self.conf = os.path.join(self.dir, f"{name}.conf")
        self.log_path = os.path.join(self.dir, f"{name}.log")
        self.tls = any(line.startswith("certfile") for line in self.extra)

    @property
    def url(self):
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _write_conf(self):
        lines = [
            "per_listener_settings false",
        ] + (["user root"] if os.geteuid() == 0 else []) + [
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence false",
            "max_queued_messages 0",  # the test clients are slow: never drop what they must see
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "",
            f"listener {self.port} 127.0.0.1",
        ] + self.extra
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        for attempt in range(5):
            self._write_conf()
            log = open(self.log_path, "a")
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            deadline = time.monotonic() + 5 * SLOWDOWN
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_open(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
            if self.fixed_port:
                # The same port again (a restart): it may still be in TIME_WAIT for a moment.
                time.sleep(0.3)
                continue
            self.port = free_port()
        raise AssertionError(f"mosquitto did not start; log:\n{self.log_text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self):
        """Ends the broker at once (teardown: nothing to save)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        self.fixed_port = True
        return self.start()

    def log_text(self):
        return read_text(self.log_path)


# --------------------------------------------------------------------------- client


class Msg:
    __slots__ = ("topic", "payload", "retain", "qos", "props", "index", "time")

    def __init__(self, m, index):
        self.topic = m.topic
        self.payload = bytes(m.payload)
        self.retain = bool(m.retain)
        self.qos = m.qos
        self.props = getattr(m, "properties", None)
        self.index = index
        self.time = time.monotonic()

    @property
    def text(self):
        return self.payload.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.payload)

    @property
    def user(self):
        """User properties as a dict (a repeated key keeps every value in a list)."""
        result = {}
        for k, v in getattr(self.props, "UserProperty", None) or []:
            if k in result:
                result[k] = result[k] if isinstance(result[k], list) else [result[k]]
                result[k].append(v)
            else:
                result[k] = v
        return result

    @property
    def seq(self):
        v = self.user.get("seq")
        return None if v is None else int(v)

    @property
    def correlation(self):
        return getattr(self.props, "CorrelationData", None)

    @property
    def expiry(self):
        return getattr(self.props, "MessageExpiryInterval", None)

    def __repr__(self):
        p = self.payload if len(self.payload) < 200 else self.payload[:200] + b"..."
        return f"<{self.topic} {p!r}{' R' if self.retain else ''} q{self.qos}>"


class Client:
    """A paho client that records every message it receives, in order, and waits for
    conditions on them with a bound. MQTT 5 by default (`protocol=4` is 3.1.1).

    `base` is the agent's `{prefix}/{device}`; `prefix` its prefix. With `rap` (MQTT 5),
    subscriptions use Retain As Published so `Msg.retain` tells what the agent published."""

    def __init__(self, port, base=None, prefix=None, protocol=5, username=None, password=None,
                 tls=None, rap=True, name="c"):
        self.port = port
        self.base = base
        self.prefix = prefix
        self.v5 = protocol == 5
        self.rap = rap and self.v5
        self.id = unique(name)
        self.messages = []
        self.cond = threading.Condition()
        self.subs = {}  # topic -> qos, for resubscription after a reconnect
        self.no_retained = set()
        self.acked = set()
        self.connected = False
        self.connects = 0
        self.reply_topic_base = f"{prefix or 'lwtest'}/_client/{self.id}"
        self.reply_counter = itertools.count(1)
        if self.v5:
            self.c = mqtt.Client(client_id=self.id, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=self.id, clean_session=True, protocol=mqtt.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls:
            self.c.tls_set(ca_certs=tls.get("ca"), certfile=tls.get("cert"), keyfile=tls.get("key"))
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.connect_async("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.connected, timeout=WAIT):
                self.c.loop_stop()
                raise AssertionError(f"test client could not connect to 127.0.0.1:{port}")
        if self.v5:
            self.subscribe(f"{self.reply_topic_base}/#")

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc != 0:
            return
        with self.cond:
            self.connects += 1
            reconnect = self.connects > 1
            subs = dict(self.subs)
        if reconnect:
            for topic, qos in subs.items():
                self._send_subscribe(topic, qos)
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:
            self.connected = False
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, *rest):
        with self.cond:
            self.acked.add(mid)
            self.cond.notify_all()

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.messages.append(Msg(m, len(self.messages)))
            self.cond.notify_all()

    def _send_subscribe(self, topic, qos):
        if self.v5:
            rh = (SubscribeOptions.RETAIN_DO_NOT_SEND if topic in self.no_retained
                  else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
            opts = SubscribeOptions(qos=qos, retainAsPublished=self.rap, retainHandling=rh)
            return self.c.subscribe(topic, options=opts)
        return self.c.subscribe(topic, qos)

    # API
    def subscribe(self, topic, qos=1, retained=True):
        """Subscribes and waits for the SUBACK. retained=False (MQTT 5): the broker sends no
        retained messages for it, so only what is published from now on arrives."""
        with self.cond:
            self.subs[topic] = qos
            if not retained:
                self.no_retained.add(topic)
        rc, mid = self._send_subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: rc {rc}"
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.acked, timeout=WAIT), f"no SUBACK for {topic}"
        return self

    def publish(self, topic, payload=b"", qos=1, retain=False, response_topic=None, correlation=None,
                expiry=None, user=None):
        props = None
        if self.v5 and (response_topic or correlation is not None or expiry is not None or user):
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
            if expiry is not None:
                props.MessageExpiryInterval = expiry
            if user:
                props.UserProperty = list(user.items())
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(timeout=WAIT)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def mark(self):
        """The index of the next message: pass it as `since` to look only at what comes later."""
        with self.cond:
            return len(self.messages)

    def snapshot(self, topic=None, since=0):
        with self.cond:
            msgs = self.messages[since:]
        if topic is None:
            return msgs
        return [m for m in msgs if mqtt.topic_matches_sub(topic, m.topic)]

    def wait_for(self, pred, timeout=WAIT, what="a condition", abort=None):
        """Waits until pred(list of every message so far) is truthy and returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred(list(self.messages))
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = self.messages[-15:]
                    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                         f"last messages: {tail}")
                if abort:
                    problem = abort()
                    if problem:
                        raise AssertionError(f"while waiting for {what}: {problem}")
                    remaining = min(remaining, 0.2)
                self.cond.wait(remaining)

    def wait_msg(self, topic, pred=None, since=0, timeout=WAIT, what=None, abort=None):
        """The first message on `topic` (a filter) from index `since` for which pred(msg) holds."""
        def find(msgs):
            for m in msgs[since:]:
                if mqtt.topic_matches_sub(topic, m.topic) and (pred is None or pred(m)):
                    return m
            return None
        return self.wait_for(find, timeout, what or f"a message on {topic}", abort)

    def wait_payload(self, topic, payload, since=0, timeout=WAIT):
        if isinstance(payload, str):
            payload = payload.encode()
        return self.wait_msg(topic, lambda m: m.payload == payload, since, timeout,
                             f"{payload!r} on {topic}")

    def assert_none(self, topic, pred=None, since=0, duration=QUIET, what=None):
        """Listens for `duration` and fails if a matching message arrives."""
        deadline = time.monotonic() + duration
        while True:
            found = [m for m in self.snapshot(topic, since) if pred is None or pred(m)]
            assert not found, f"unexpected {what or 'message'}: {found}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self.cond:
                self.cond.wait(min(remaining, 0.1))

    def fresh_retained(self, topic, timeout=2.0 * SLOWDOWN):
        """Subscribes a new connection to `topic` and returns the retained messages it gets
        (those that arrive within `timeout`; returns early once some arrived and 0.3 s passed
        quietly)."""
        other = Client(self.port, self.base, self.prefix, name="fresh")
        try:
            other.subscribe(topic)
            deadline = time.monotonic() + timeout
            last_count, last_change = 0, time.monotonic()
            while time.monotonic() < deadline:
                n = len(other.snapshot())
                if n != last_count:
                    last_count, last_change = n, time.monotonic()
                elif n and time.monotonic() - last_change > 0.3:
                    break
                time.sleep(0.05)
            return [m for m in other.snapshot() if m.retain]
        finally:
            other.close()

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()

    # linewire requests
    def topic(self, rest):
        assert self.base, "client has no agent base topic"
        return f"{self.base}/{rest}"

    def request(self, topic, payload=b"", response=True, correlation=None, timeout=WAIT,
                expiry=None):
        """Publishes a request. With `response` (MQTT 5), it carries a Response Topic and
        Correlation Data, and this waits for the reply and returns it as a Reply."""
        if not response:
            self.publish(topic, payload, expiry=expiry)
            return None
        assert self.v5, "use reply_to in the payload with MQTT 3.1.1"
        rt = f"{self.reply_topic_base}/r{next(self.reply_counter)}"
        cd = correlation if correlation is not None else b"\x00\xffcd-" + uuid.uuid4().bytes
        start = self.mark()
        self.publish(topic, payload, response_topic=rt, correlation=cd, expiry=expiry)
        m = self.wait_msg(rt, since=start, timeout=timeout, what=f"the reply to {topic}")
        return Reply(m, rt, cd)

    def start(self, command, fields=None, **kw):
        """A start request on cmd/{command}/start (payload: `fields` as JSON, or raw bytes)."""
        payload = fields if isinstance(fields, (bytes, str)) else json.dumps(fields or {})
        return self.request(self.topic(f"cmd/{command}/start"), payload, **kw)

    def run(self, command, args=None, id=None, stdin=None, timeout=None, extra=None, wait=True,
            final_timeout=WAIT, expect_ok=True):
        """Subscribes to run/{id}/#, starts the run with that id and (with `wait`) waits for
        its final state. Returns a Run."""
        rid = id or unique("r")
        run = Run(self, rid)
        fields = {"id": rid}
        if args is not None:
            fields["args"] = args
        if stdin is not None:
            fields["stdin"] = stdin
        if timeout is not None:
            fields["timeout"] = timeout
        fields.update(extra or {})
        run.reply = self.start(command, fields)
        if expect_ok:
            assert run.reply.get("ok") is True, f"start {command} {fields} refused: {run.reply.data}"
        if wait and run.reply.get("ok"):
            run.wait_final(final_timeout)
        return run

    def wait_error(self, request_topic, since=0, timeout=WAIT):
        """The event on {base}/errors about `request_topic` (subscribe to errors first)."""
        def about(m):
            try:
                return m.payload and m.json().get("topic") == request_topic
            except ValueError:
                return False
        m = self.wait_msg(self.topic("errors"), about, since, timeout,
                          f"an errors event about {request_topic}")
        return m.json()


class Reply:
    def __init__(self, msg, response_topic, correlation):
        self.msg = msg
        self.response_topic = response_topic
        self.correlation = correlation
        self.data = msg.json()

    def get(self, key, default=None):
        return self.data.get(key, default)

    def __getitem__(self, key):
        return self.data[key]

    @property
    def code(self):
        return (self.data.get("error") or {}).get("code")

    def __repr__(self):
        return f"Reply({self.data})"


class Run:
    """One run seen through a client subscribed to run/{id}/#."""

    def __init__(self, client, rid):
        self.c = client
        self.id = rid
        self.reply = None
        self.prefix_topic = client.topic(f"run/{rid}")
        self.since = client.mark()
        client.subscribe(f"{self.prefix_topic}/#")

    def _msgs(self, kind):
        return self.c.snapshot(f"{self.prefix_topic}/{kind}", self.since)

    @property
    def out_msgs(self):
        return self._msgs("out")

    @property
    def err_msgs(self):
        return self._msgs("err")

    @property
    def out(self):
        return [m.payload for m in self.out_msgs]

    @property
    def err(self):
        return [m.payload for m in self.err_msgs]

    @property
    def out_text(self):
        return [m.text for m in self.out_msgs]

    @property
    def state_msgs(self):
        return [m for m in self._msgs("state") if m.payload]

    @property
    def states(self):
        return [m.json() for m in self.state_msgs]

    @property
    def final(self):
        for s in self.states:
            if s.get("state") in FINAL_STATES:
                return s
        return None

    def wait_state(self, state, timeout=WAIT):
        m = self.c.wait_msg(f"{self.prefix_topic}/state",
                            lambda m: bool(m.payload) and m.json().get("state") == state,
                            self.since, timeout, f"run {self.id} state {state}")
        return m.json()

    def wait_final(self, timeout=WAIT):
        m = self.c.wait_msg(f"{self.prefix_topic}/state",
                            lambda m: bool(m.payload) and m.json().get("state") in FINAL_STATES,
                            self.since, timeout, f"the final state of run {self.id}")
        return m.json()

    def final_msg(self):
        for m in self.state_msgs:
            if m.json().get("state") in FINAL_STATES:
                return m
        return None

    def wait_out(self, payload, timeout=WAIT):
        if isinstance(payload, str):
            payload = payload.encode()
        return self.c.wait_msg(f"{self.prefix_topic}/out", lambda m: m.payload == payload,
                               self.since, timeout, f"{payload!r} on run {self.id} out")

    def wait_out_count(self, n, timeout=WAIT):
        return self.c.wait_for(lambda msgs: len(self.out_msgs) >= n, timeout,
                               f"{n} out lines of run {self.id}")

    def send(self, kind, payload=b""):
        self.c.publish(f"{self.prefix_topic}/{kind}", payload)

    def send_in(self, line):
        self.send("in", line)

    def eof(self):
        self.send("eof")

    def signal(self, name):
        self.send("signal", name)


# --------------------------------------------------------------------------- agent


def deep_merge(base, extra):
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


class Agent:
    """linewired with a generated YAML config, in its own folder and process session."""

    def __init__(self, directory, broker, commands=None, config=None, device=None, prefix="lwtest",
                 env=None, base_env=True, cwd=None, raw_yaml=None, client_auth=None, client_tls=None):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.broker = broker
        self.device = device or unique("d")
        self.prefix = prefix
        self.config_path = os.path.join(self.dir, "linewire.yaml")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.cwd = cwd or self.dir
        self.proc = None
        self.returncodes = []
        self.client_auth = client_auth or {}
        self.client_tls = client_tls
        self.env = {}
        if base_env:
            self.env = {
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": os.environ.get("HOME", "/root"),
                "LANG": "C.UTF-8",
            }
        # Crash safety is on by default (SPEC §5): each test agent keeps its state in its
        # own folder, as systemd's StateDirectory= would give it, never in /var/lib.
        self.state_dir = os.path.join(self.dir, "state")
        self.env["STATE_DIRECTORY"] = self.state_dir
        self.env.update(env or {})
        if raw_yaml is not None:
            self.config = None
            text = raw_yaml
        else:
            if commands is None:
                commands = {"echo": {"exec": ["/bin/echo", "hello"]}}
            self.config = {
                "device": self.device,
                "prefix": prefix,
                "broker": {"url": broker.url},
                "commands": commands,
            }
            deep_merge(self.config, config)
            text = yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True)
        with open(self.config_path, "w") as f:
            f.write(text)
        self.base = f"{prefix}/{self.device}"
        self.watch = None
        self.clients = []
        self.pids = []  # every linewired process started, for the leftover check

    def client(self, **kw):
        """A new connected client for this agent, subscribed to its status and errors."""
        opts = dict(base=self.base, prefix=self.prefix, username=self.client_auth.get("username"),
                    password=self.client_auth.get("password"), tls=self.client_tls)
        opts.update(kw)
        c = Client(self.broker.port, **opts)
        c.subscribe(f"{self.base}/status")
        c.subscribe(f"{self.base}/errors")
        self.clients.append(c)
        return c

    def _ensure_watch(self):
        if self.watch is None:
            self.watch = self.client(name="watch")

    def problem(self):
        if self.proc is not None and self.proc.poll() is not None:
            return f"linewired exited with {self.proc.returncode}; log:\n{self.log_tail()}"
        return None

    def start(self, wait_online=True, args=("--log-level", "debug")):
        assert os.path.exists(LINEWIRED), f"no agent binary at {LINEWIRED}"
        self._ensure_watch()
        since = self.watch.mark()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([LINEWIRED, "--config", self.config_path, *args], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        self.pids.append(self.pid)
        if wait_online:
            self.wait_online(since)
        return self

    def wait_online(self, since=0, timeout=WAIT):
        return self.watch.wait_msg(f"{self.base}/status", lambda m: m.payload == b"online", since,
                                   timeout, f"{self.base}/status = online", abort=self.problem)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10 * SLOWDOWN):
        """Signals the agent (sig=None: just waits) and waits for it to exit; returns its exit
        status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None and sig is not None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self.returncodes.append("hung")
            self.proc = None
            raise AssertionError(f"linewired did not exit within {timeout}s of {sig!r}; log:\n"
                                 f"{self.log_tail()}")
        self.returncodes.append(rc)
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, and removes whatever the agent left behind in its session."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait(5)
        self.returncodes.append("killed")
        self.proc = None
        for p in session_members(pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=80):
        return "\n".join(self.log_text().splitlines()[-n:])

    def teardown(self):
        """SIGTERM; the agent must exit 0 within a few seconds and leave no process behind."""
        problems = []
        if self.proc is not None:
            early = self.proc.poll()
            if early is not None:
                problems.append(f"linewired had already exited with {early} before the test's end")
                self.proc = None
                self.returncodes.append(early)
        if self.proc is not None:
            try:
                rc = self.stop()
                if rc != 0:
                    problems.append(f"linewired exited with {rc} after SIGTERM (SPEC §6: exit 0)")
            except AssertionError as e:
                problems.append(str(e))
        for pid in self.pids:
            try:
                wait_until(lambda: not session_members(pid), 3 * SLOWDOWN)
            except AssertionError:
                left = session_members(pid)
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                problems.append(f"processes left behind after linewired exited: {left} (SPEC §5/§6)")
        for c in self.clients or []:
            c.close()
        return problems


# --------------------------------------------------------------------------- refusals


def no_run_started(c, since):
    """No run state appeared since `since` (a mark of c.spy)."""
    time.sleep(0.1 * SLOWDOWN)
    started = [m for m in c.spy.snapshot(c.topic("run/+/state"), since) if m.payload]
    assert not started, f"a refused request started a run: {started}"


def still_fine(c):
    a = c.agent
    assert a.proc.poll() is None, "the agent died"
    offline = [m for m in a.watch.snapshot(f"{a.base}/status") if m.payload != b"online"]
    assert not offline, offline
    assert c.run("echo").out == [b"hi"]
