"""What the tests and the benchmarks (bench/*.py) read from /proc: one parser of
/proc/PID/stat and /proc/PID/status for all of them. Standard library only."""

import os


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None once `pid` is gone:
    [0] = state, [1] = ppid, [2] = pgrp, [3] = session, [11] = utime, [12] = stime."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def processes():
    """(pid, stat_fields) of every process there is, zombies included."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields is not None:
                yield int(entry), fields


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children(pid):
    """Processes whose parent is `pid`, zombies included."""
    return [p for p, fields in processes() if int(fields[1]) == pid]


def zombie_children(ppid):
    return [p for p, fields in processes() if int(fields[1]) == ppid and fields[0] == "Z"]


def group_members(pgid):
    """Live processes of process group `pgid`."""
    return [p for p, fields in processes() if int(fields[2]) == pgid and fields[0] != "Z"]


def session_members(sid):
    """Live processes whose session id is `sid` (the agent is started in its own session,
    so these are the agent and every process it started that did not call setsid)."""
    return [p for p, fields in processes() if int(fields[3]) == sid and fields[0] != "Z"]


def cpu_seconds(pids):
    """User + system CPU seconds of `pids` together (their own, not their children's);
    a process that is gone counts nothing."""
    ticks = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def status(pid):
    """VmRSS, RssAnon and VmHWM of a process, in bytes (OSError once it is gone)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out
