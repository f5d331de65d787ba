"""CPU of the statements every turn runs besides its INSERTs, per call, in this process.

The send's locked read of its conversation (with its runs' counts), the conversation's
new time and title, the model's first page of history, and the run's end with its
conversation's new time. Ours (`conversations.sql`): each written out once, run through
Django's cursor with the call's values. Baseline, same run, alternating: the same
statements as plain ORM querysets, built and compiled by Django at each call. One
thread, a fresh migrated database; each figure is the median of `--rounds` rounds of
`--calls` calls, and the spread is the lowest and highest round.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/turn_statements.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_backend_flag, choose_backend, describe_backend, header, ratio, table  # noqa: E402
from tests.live import Templates  # noqa: E402


def cpu_per_call(call, calls: int) -> float:
    began = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - began) / calls * 1e6


def variants():
    """The statements, each as (name, ours, baseline): calls that do the same."""
    from django.contrib.auth.models import User
    from django.db.models import Case, Count, Exists, F, OuterRef, Subquery, Value, When
    from django.utils import timezone

    from conversations import sql
    from conversations.models import MESSAGE_ORDER, Conversation, Message, Run
    from conversations.selectors.messages import HISTORY_FIELDS, HISTORY_PAGE
    from conversations.services.conversations import conversation_create
    from conversations.services.turns import message_send

    user = User.objects.create_user(f"bench-{uuid.uuid4()}")
    conversation = conversation_create(user=user)
    for turn in range(20):
        message_send(conversation=conversation, content=f"hello {turn}", client_id=None, owner="bench")
    pk, now = conversation.pk, timezone.now()
    later = now + timedelta(days=1)
    run_id = Run.objects.filter(conversation=conversation).values_list("pk", flat=True).first()
    runs = Run.objects.filter(conversation=OuterRef("pk"))
    locked_by_the_orm = Conversation.objects.select_for_update(of=("self",)).annotate(
        queued_runs=Subquery(
            runs.filter(status=Run.Status.QUEUED).order_by().values("conversation").annotate(n=Count("pk")).values("n")
        ),
        busy=Exists(runs.filter(status__in=Run.ACTIVE)),
        latest_run_status=Subquery(runs.order_by("-created_at").values("status")[:1]),
    )
    ended = {"status": Run.Status.RUNNING, "error": None, "checkpoint_id": "", "model": "", "input_tokens": None,
             "output_tokens": None, "reasoning_tokens": None, "finished_at": None, "owner": "bench",
             "lease_expires_at": None}
    return [
        ("the send's locked read", lambda: sql.conversation_locked(pk),
         lambda: locked_by_the_orm.get(pk=pk)),
        ("the turn stored (UPDATE)", lambda: sql.conversation_turn_stored(pk, now=now, title="hello"),
         lambda: Conversation.objects.filter(pk=pk).update(
             updated_at=now, title=Case(When(title="", then=Value("hello")), default=F("title")))),
        ("the model's history (20 rows)", lambda: sql.history_page(pk, before_turn_at=later, limit=HISTORY_PAGE),
         lambda: list(Message.objects.filter(conversation_id=pk, turn_at__lt=later)
                      .order_by(*[f"-{name}" for name in MESSAGE_ORDER]).values_list(*HISTORY_FIELDS)[:HISTORY_PAGE])),
        ("the run's end (UPDATE)", lambda: sql.run_ended(run_id, **ended),
         lambda: Run.objects.filter(pk=run_id, status__in=Run.ACTIVE).update(**ended)),
        ("the conversation touched (UPDATE)", lambda: sql.conversation_touched(pk, now=now),
         lambda: Conversation.objects.filter(pk=pk).update(updated_at=now)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    add_backend_flag(parser)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    header("statements of a turn", {"backend": describe_backend(backend), "calls": args.calls, "rounds": args.rounds})
    templates = Templates(Path(tempfile.mkdtemp(prefix="bench-turn-statements-")))
    database = templates.new_database(backend)
    admin_url = os.environ.get("DATABASE_URL")
    os.environ.update(database.env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    os.environ["RUN_QUEUE_MAX"] = "1000"  # the turns of its history are all queued
    import django

    django.setup()
    from django.db import connection, transaction

    rows, total_ours, total_base = [], [0.0] * args.rounds, [0.0] * args.rounds
    try:
        with transaction.atomic():  # as on the turn path: the locked read needs a transaction
            for name, ours, baseline in variants():
                ours(), baseline()  # warm-up
                mine, theirs = [], []
                for round_ in range(args.rounds):  # alternating
                    mine.append(cpu_per_call(ours, args.calls))
                    theirs.append(cpu_per_call(baseline, args.calls))
                    total_ours[round_] += mine[-1]
                    total_base[round_] += theirs[-1]
                rows.append([name, _median_and_spread(mine), _median_and_spread(theirs),
                             ratio(statistics.median(mine), statistics.median(theirs))])
            transaction.set_rollback(True)
    finally:
        connection.close()
        if admin_url:  # dropped from the server's default database, not from itself
            os.environ["DATABASE_URL"] = admin_url
        templates.drop_all()
    rows.append(["all five (one turn)", _median_and_spread(total_ours), _median_and_spread(total_base),
                 ratio(statistics.median(total_ours), statistics.median(total_base))])
    table(["CPU µs per call", "ours: written-out SQL", "plain ORM", "ours / baseline"], rows)


def _median_and_spread(figures: list[float]) -> str:
    return f"{statistics.median(figures):.0f} ({min(figures):.0f}–{max(figures):.0f})"


if __name__ == "__main__":
    main()
