"""Two processes running `migrate` on an empty database at once both succeed."""

import subprocess

from tests.live import PYTHON, ROOT, admin_sql, base_env, postgres_admin_url, url_with_database


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
        name = f"chat_migrate_{tmp_path.name[-12:]}".replace("-", "_").lower()
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = url_with_database(postgres_admin_url(), name)
    try:
        results = run_two_migrates(env)
        for code, output in results:
            assert code == 0, output
        check = subprocess.run([PYTHON, "manage.py", "migrate", "--check"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        tables = subprocess.run(
            [PYTHON, "manage.py", "shell", "-c",
             "from django.db import connection; print(sorted(connection.introspection.table_names()))"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout
        assert "'checkpoints'" in tables and "'conversations_run'" in tables
    finally:
        if backend == "postgres":
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
