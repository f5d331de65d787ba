"""Retention: `manage.py prune_checkpoints --keep 20 --idle-for 7d [--dry-run]`."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from conversations.checkpoints import checkpoints_prune

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30m, 12h or 7d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Delete old graph checkpoints: keep the latest N per conversation, plus every one a "
        "branch, an active run or a pending approval needs. Conversations keep working. "
        "Every checkpoint of a conversation that was deleted goes too."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep", type=int, default=20, help="checkpoints kept per conversation (default 20)")
        parser.add_argument("--idle-for", help="only conversations idle for longer than this: 30m, 12h, 7d")
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")

    def handle(self, *args, keep, idle_for, dry_run, **options):
        try:
            idle = duration(idle_for) if idle_for else None
            report = checkpoints_prune(keep=keep, idle_for=idle, dry_run=dry_run)
        except ValueError as error:
            raise CommandError(str(error)) from None
        verb = "would delete" if dry_run else "deleted"
        for conversation_id, count in report.by_conversation.items():
            self.stdout.write(f"{conversation_id}: {verb} {count} checkpoints")
        for thread_id, count in report.of_deleted_conversations.items():
            self.stdout.write(f"{thread_id}: {verb} {count} checkpoints (its conversation was deleted)")
        self.stdout.write(
            f"{report.conversations} conversations examined, {len(report.of_deleted_conversations)} deleted ones "
            f"found; {verb} {report.checkpoints} checkpoints, {report.writes} pending writes and {report.blobs} "
            f"blobs; kept {report.kept} checkpoints"
        )
