"""Fixtures of the tests across server processes."""

import pytest

from tests.conftest import require_services
from tests.live import Server


@pytest.fixture
def two_servers(templates, tmp_path):
    require_services("postgres")
    database = templates.new_database("postgres", redis=True)
    mail = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(tmp_path / "mail")}
    servers = [Server(database, tmp_path / f"server-{i}.log", extra_env=mail).start() for i in range(2)]
    yield database, servers
    for server in servers:
        server.stop()
