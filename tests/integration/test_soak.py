"""Soak, the CI variant of bench/soak.py (SPEC §5: no leaked descriptors, no zombies,
ever; §6: reconnect and reload): one agent for 3 minutes under a run every 100 ms, a
broker restart every 40 s, a SIGHUP every 30 s and a flood of malformed messages every
20 s (the periods scaled down from 60/45/30 s so that each happens at least twice, and
each once within the first minute). Its RSS, RssAnon, open fds and threads must stay
within the first minute's plateau plus a small margin, with no zombie at any sample,
every run must end as its command does, and every SIGHUP must be a reload. The
samples go to the test's folder (soak.csv, soak.md); the figures are printed with a
`FIGURE` prefix."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))

from harness import SLOWDOWN  # noqa: E402
from soak import soak, summary_table  # noqa: E402

MINUTES = float(os.environ.get("LINEWIRE_SOAK_MINUTES", "3"))


def test_soak_ci(tmp_path):
    out = str(tmp_path / "soak")
    lines = []
    result = soak(minutes=MINUTES, run_every=0.1 * SLOWDOWN, restart_every=40, hup_every=30,
                  flood_every=20, sample_every=10, workdir=str(tmp_path / "work"), out=out,
                  log=lines.append)
    for line in lines:
        print(f"FIGURE soak {line}", flush=True)
    if result["samples"]:
        for line in summary_table(result).splitlines():
            print(f"FIGURE soak {line}", flush=True)
    print(f"FIGURE soak samples: {out}.csv, {out}.md", flush=True)
    c = result["counts"]
    assert not result["violations"], "\n".join(result["violations"])
    assert len(result["samples"]) >= MINUTES * 6 - 1, f"{len(result['samples'])} samples"
    assert c["restarts"] >= 2 and c["reloads_sent"] >= 2 and c["floods"] >= 2, c
    assert c["reloads_logged"] == c["reloads_sent"] and c["reload_refused"] == 0, c
    # requests are sent only while the agent is online: a few in flight when the broker
    # goes down may be lost with it (clean sessions), never more
    assert c["runs_finished"] >= 0.97 * c["runs_requested"], c
    assert c["runs_unanswered"] <= 5 * c["restarts"] + 1, c
    assert c["agent_errors_logged"] == 0, c
    assert result["ok"]
