"""Rendering a message: time and HTML of Markdown attacks and of normal Markdown, with the
budget (conversations.rendering.render_markdown) and without it (the same markdown-it
parser and nh3 sanitizer, what rendering was before), in the same run on the same inputs.

The inputs are the tests' (tests/conversations/test_rendering.py): each attack at the
message limit (32,000 characters; the 3 KB wide table excepted), and long normal
documents. In this process, no server: the median CPU time of R renderings each (this
thread's, so that other work on a shared machine weighs less on it).

    .venv/bin/python bench/rendering.py [--repeats 5] [--only "reference link bomb,README"]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

from bench.common import header, human_bytes, median, table  # noqa: E402


def timed(render, text: str, repeats: int) -> tuple[float, str]:
    """Median CPU milliseconds of `repeats` renderings, and the HTML."""
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        html = render(text)
        times.append((time.thread_time() - started) * 1000)
    return median(times), html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma list of input names")
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    django.setup()
    from conversations.rendering import (
        HTML_MAX_RATIO, RENDER_MAX_STEPS, html_to_store, markdown_parser, parsing_steps, render_markdown, sanitize,
    )
    from tests.conversations.test_rendering import ATTACKS, NORMAL

    unbounded = markdown_parser()

    def before(text: str) -> str:
        return sanitize(unbounded.render(text))

    inputs = {**ATTACKS, **NORMAL}
    if args.only:
        inputs = {name: inputs[name] for name in args.only.split(",")}
    header("rendering a message: with the budget and without it", {
        "repeats": args.repeats, "RENDER_MAX_STEPS": RENDER_MAX_STEPS, "HTML_MAX_RATIO": HTML_MAX_RATIO,
    })
    rows = []
    totals = [0.0, 0.0]
    for name, text in inputs.items():
        before_ms, before_html = timed(before, text, args.repeats)
        after_ms, after_html = timed(render_markdown, text, args.repeats)
        totals[0] += before_ms
        totals[1] += after_ms
        rows.append([
            name, len(text), parsing_steps(text, limit=10**9),
            before_ms, human_bytes(len(before_html)),
            after_ms, human_bytes(len(after_html)), human_bytes(len(html_to_store(text))),
            "unchanged" if after_html == before_html else "plain text",
            f"{before_ms / after_ms:,.1f}×",
        ])
    table(
        ["input", "chars", "steps", "before CPU ms", "before HTML", "after CPU ms", "after HTML", "after stored",
         "after HTML is", "speed-up"],
        rows,
    )
    print(f"all inputs: before {totals[0]:,.0f} ms, after {totals[1]:,.0f} ms (medians summed)")


if __name__ == "__main__":
    main()
