"""`migrate`, serialized across processes.

Two servers starting at once both run migrate; Django's own command would race on an
empty database (both create django_migrations, both apply 0001). A PostgreSQL advisory
lock (or a file lock for SQLite) makes the second wait, then find nothing left to do.
"""

import fcntl
import time
from contextlib import contextmanager

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections

from agent.checkpointer import is_postgres, postgres_conninfo

MIGRATE_LOCK_KEY = 0x6D696772617465  # "migrate"
LOCK_POLL_SECONDS = 0.2


@contextmanager
def migrate_lock(settings_dict):
    if is_postgres(settings_dict):
        import psycopg

        with psycopg.connect(postgres_conninfo(settings_dict), autocommit=True) as conn:
            # Poll rather than block: a session blocked in pg_advisory_lock() counts as a
            # running transaction, and CREATE INDEX CONCURRENTLY (in the checkpointer's
            # setup) would wait for it forever.
            while not conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATE_LOCK_KEY,)).fetchone()[0]:
                time.sleep(LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
    else:
        with open(f"{settings_dict['NAME']}.migrate-lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


class Command(DjangoMigrateCommand):
    def handle(self, *args, **options):
        with migrate_lock(connections[options["database"]].settings_dict):
            return super().handle(*args, **options)
