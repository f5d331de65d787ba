"""Two processes running `migrate` on an empty database at once both succeed."""

import subprocess
import uuid

from tests.live import PYTHON, ROOT, admin_sql, base_env, postgres_admin_url, url_with_database


# `migrate --check` (exits 1 if a migration is left unapplied), then the tables, in one process.
MIGRATED_TABLES = """
from django.core.management import call_command
from django.db import connection
call_command("migrate", check_unapplied=True)
print(sorted(connection.introspection.table_names()))
"""


def run_two_migrates(env) -> list[subprocess.CompletedProcess]:
    processes = [
        subprocess.Popen([PYTHON, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    return [(p.wait(timeout=300), p.stdout.read()) for p in processes]


def test_two_concurrent_migrates_on_an_empty_database(backend, tmp_path):
    env = base_env()
    if backend == "sqlite":
        env["SQLITE_PATH"] = str(tmp_path / "empty.sqlite3")
    else:
        name = f"chat_migrate_{uuid.uuid4().hex[:10]}"  # unique: other test runs may share the server
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = url_with_database(postgres_admin_url(), name)
    try:
        results = run_two_migrates(env)
        for code, output in results:
            assert code == 0, output
        check = subprocess.run([PYTHON, "manage.py", "shell", "-c", MIGRATED_TABLES], cwd=ROOT, env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "'checkpoints'" in check.stdout and "'conversations_run'" in check.stdout
    finally:
        if backend == "postgres":
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
