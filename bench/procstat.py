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


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(proc.name))
    tree, pending = [], [pid]
    while pending:
        tree.append(current := pending.pop())
        pending.extend(children.get(current, []))
    return tree


def tree_threads(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of the process and its descendants."""
    return {tid: cpu for process in process_tree(pid) for tid, cpu in threads(process).items()}


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
        self.processes = process_tree(self.pid) if self.pid else []
        self.t0 = tree_threads(self.pid) if self.pid else {}
        self.s0 = by_name(("postgres", "redis-server"))
        self.own0 = _cpu(Path("/proc/self/stat"))
        self.wait0 = sum(runqueue_wait(pid) for pid in self.processes)
        self.load0 = Path("/proc/loadavg").read_text().split()[0]

    def stop(self) -> dict:
        t1 = tree_threads(self.pid) if self.pid else {}
        s1 = by_name(("postgres", "redis-server"))
        per_thread = {tid: t1[tid] - self.t0.get(tid, 0.0) for tid in t1}
        busy = sorted(per_thread.items(), key=lambda kv: -kv[1])
        # A process's main thread runs its event loop; the busiest one is the bound.
        loops = sorted((per_thread.get(pid, 0.0) for pid in self.processes), reverse=True)
        return {
            "server": sum(per_thread.values()),
            "processes": len(self.processes),
            "main_thread": loops[0] if loops else 0.0,
            "loops": loops,
            "other_threads": [(tid, cpu) for tid, cpu in busy if tid not in self.processes],
            "postgres": s1["postgres"] - self.s0["postgres"],
            "redis": s1["redis-server"] - self.s0["redis-server"],
            "client": _cpu(Path("/proc/self/stat")) - self.own0,
            "runqueue_wait": sum(runqueue_wait(pid) for pid in self.processes) - self.wait0,
            "load": f"{self.load0} → {Path('/proc/loadavg').read_text().split()[0]}",
        }


def describe(cpu: dict, wall: float) -> str:
    loops = [s for s in cpu["loops"] if s > 0.05]
    if len(loops) > 1:  # uvicorn: the supervisor's main thread is idle, each worker has a loop
        server = (f"{cpu['processes']} server processes {cpu['server']:.1f} (event-loop threads "
                  f"{', '.join(f'{s:.1f}' for s in loops)}; ")
    else:
        server = (f"server process {cpu['server']:.1f} (event-loop thread {cpu['main_thread']:.1f} = "
                  f"{100 * cpu['main_thread'] / wall:.0f}% of a core; ")
    others = [(tid, s) for tid, s in cpu["other_threads"] if s > 0.05]
    top = ", ".join(f"{s:.1f}" for _, s in others[:4]) or "none"
    return (
        f"CPU seconds over {wall:.1f} s wall: {server}"
        f"busiest other threads {top}), PostgreSQL {cpu['postgres']:.1f}, Redis {cpu['redis']:.1f}, "
        f"bench client {cpu['client']:.1f}; event-loop threads runnable but waiting for a CPU {cpu['runqueue_wait']:.1f} s; "
        f"load average {cpu['load']}"
    )
