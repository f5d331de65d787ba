"""Shared by the benches: the machine, the backend, tables, and the file-descriptor limit."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import postgres_available, redis_available  # noqa: E402

# One user, alice, drives every client of a bench: the per-user limits stay on, so their
# cost is measured, but set where a bench cannot reach them.
for name, value in {"RATE_LIMIT_MESSAGES": "1000000/1", "RATE_LIMIT_DECISIONS": "1000000/1",
                    "WS_MAX_SOCKETS_PER_USER": "1000000"}.items():
    os.environ.setdefault(name, value)


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {ram} RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def add_backend_flag(parser: argparse.ArgumentParser, *, postgres_only: bool = False) -> None:
    choices = ["postgres"] if postgres_only else ["postgres", "sqlite"]
    parser.add_argument(
        "--backend", choices=choices, default=None,
        help="postgres (PostgreSQL + Redis) is the default when DATABASE_URL/REDIS_URL are set or reachable",
    )


def choose_backend(requested: str | None) -> str:
    if requested:
        if requested == "postgres" and not (postgres_available() and redis_available()):
            sys.exit("PostgreSQL and Redis are needed for --backend postgres (set DATABASE_URL and REDIS_URL)")
        return requested
    if os.environ.get("DATABASE_URL") and postgres_available() and redis_available():
        return "postgres"
    return "sqlite"


def describe_backend(backend: str) -> str:
    if backend == "postgres":
        return "PostgreSQL + Redis channel layer"
    return "SQLite (WAL) + in-memory channel layer"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def header(title: str, params: dict) -> None:
    print(f"== {title}")
    print(f"machine: {machine()}")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    print()


def table(columns: list[str], rows: list[list]) -> None:
    """A plain-text table, also valid Markdown."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(columns[i]), *(len(r[i]) for r in cells)) for i in range(len(columns))]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print()


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "–"
    return f"{ours / theirs:.2f}×"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_and_spread(figures: list[float]) -> str:
    """The median of the rounds, with the lowest and the highest."""
    return f"{statistics.median(figures):.0f} ({min(figures):.0f}–{max(figures):.0f})"


def human_bytes(n: float) -> str:
    for unit in ["B", "KB", "MB", "GB"]:
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)
