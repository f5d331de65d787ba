"""CPU seconds of processes and threads, read from /proc (Linux): where the time goes."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat_path: Path) -> float:
    try:
        fields = stat_path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread was runnable but waiting for a CPU (schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def threads(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process."""
    out = {}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out[int(task.name)] = _cpu(task / "stat")
    except OSError:
        pass
    return out


def by_name(names: tuple[str, ...]) -> dict[str, float]:
    """Total CPU seconds of every process whose command name starts with one of `names`."""
    totals = {name: 0.0 for name in names}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        for name in names:
            if comm.startswith(name):
                totals[name] += _cpu(proc / "stat")
    return totals


class Sampler:
    """CPU used between start() and stop() by a server process (per thread) and by the
    PostgreSQL and Redis servers."""

    def __init__(self, pid: int | None):
        self.pid = pid

    def start(self) -> None:
        self.t0 = threads(self.pid) if self.pid else {}
        self.s0 = by_name(("postgres", "redis-server"))
        self.own0 = _cpu(Path("/proc/self/stat"))
        self.wait0 = runqueue_wait(self.pid) if self.pid else 0.0
        self.load0 = Path("/proc/loadavg").read_text().split()[0]

    def stop(self) -> dict:
        t1 = threads(self.pid) if self.pid else {}
        s1 = by_name(("postgres", "redis-server"))
        per_thread = {tid: t1[tid] - self.t0.get(tid, 0.0) for tid in t1}
        busy = sorted(per_thread.items(), key=lambda kv: -kv[1])
        return {
            "server": sum(per_thread.values()),
            "main_thread": per_thread.get(self.pid, 0.0),
            "other_threads": busy,
            "postgres": s1["postgres"] - self.s0["postgres"],
            "redis": s1["redis-server"] - self.s0["redis-server"],
            "client": _cpu(Path("/proc/self/stat")) - self.own0,
            "runqueue_wait": (runqueue_wait(self.pid) - self.wait0) if self.pid else 0.0,
            "load": f"{self.load0} → {Path('/proc/loadavg').read_text().split()[0]}",
        }


def describe(cpu: dict, wall: float, pid: int | None) -> str:
    others = [(tid, s) for tid, s in cpu["other_threads"] if tid != pid and s > 0.05]
    top = ", ".join(f"{s:.1f}" for _, s in others[:4]) or "none"
    return (
        f"CPU seconds over {wall:.1f} s wall: server process {cpu['server']:.1f} "
        f"(event-loop thread {cpu['main_thread']:.1f} = {100 * cpu['main_thread'] / wall:.0f}% of a core; "
        f"busiest other threads {top}), PostgreSQL {cpu['postgres']:.1f}, Redis {cpu['redis']:.1f}, "
        f"bench client {cpu['client']:.1f}; event-loop thread runnable but waiting for a CPU {cpu['runqueue_wait']:.1f} s; "
        f"load average {cpu['load']}"
    )
