"""examples/www in a real browser: headless Chromium loads the page from the agent's
static_dir, the page starts a command over the WebSocket listener, and the test reads
the lines off the page through the DevTools protocol (SPEC §8)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websocket

from harness import WAIT, free_port, script, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WWW = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "www")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed here (scripts/install-deps.sh installs it; CI runs this)")


class Browser:
    """Headless Chromium driven over its DevTools WebSocket."""

    def __init__(self, directory):
        self.profile = tempfile.mkdtemp(dir=str(directory), prefix="chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        wait_until(lambda: os.path.exists(port_file) and open(port_file).read().count("\n") >= 1,
                   timeout=6 * WAIT, what="chromium's DevTools port")
        port = int(open(port_file).read().split("\n")[0])
        pages = []

        def find_page():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=WAIT) as r:
                pages[:] = [p for p in json.load(r) if p.get("type") == "page"]
            return pages

        wait_until(find_page, timeout=3 * WAIT, what="a chromium page")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=WAIT,
                                              suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + 3 * WAIT
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                return reply
        raise AssertionError(f"no DevTools reply to {method}")

    def evaluate(self, expression):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply.get("result", {}).get("result", {}).get("value")

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(WAIT)
            shutil.rmtree(self.profile, ignore_errors=True)


def test_page_shows_lines_live(agent, tmp_path):
    assert CHROMIUM, "chromium is required on CI (scripts/install-deps.sh)"
    count = script(tmp_path, "count.sh", """
i=1
while [ $i -le "$1" ]; do echo "line $i"; i=$((i+1)); done
printf 'the end'
""")
    port = free_port()
    agent({"count": {"exec": [count], "args": {"pattern": "[0-9]{1,2}", "max": 1},
                     "transports": ["websocket"]}},
          config={"websocket": {"listen": f"127.0.0.1:{port}", "static_dir": os.path.abspath(WWW)}})
    browser = Browser(tmp_path)
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/?command=count&arg=4&autostart=1")
        status = wait_until(
            lambda: (browser.evaluate("document.getElementById('status').textContent") or "")
            .startswith("closed") and browser.evaluate("document.getElementById('status').textContent"),
            timeout=6 * WAIT, what="the page to show the run closed")
        lines = browser.evaluate("[...document.querySelectorAll('#lines li')].map(li => li.textContent)")
        assert lines == ["line 1", "line 2", "line 3", "line 4", "the end"]
        assert status == "closed 1000"
    finally:
        browser.close()
