"""Fixtures of the tests across server processes."""

import pytest

from tests.conftest import require_services
from tests.live import Server, start_together

# A process killed with SIGKILL holds its runs until their lease expires: a short lease,
# renewed often, so that another process takes them over within seconds.
SHORT_LEASES = {"RUN_LEASE_SECONDS": "3", "RUN_RECOVERY_INTERVAL_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def server_pair(templates, tmp_path_factory):
    """Two daphne processes on one PostgreSQL database and one Redis, for a whole module
    (each test reads only its own conversations' rows); their e-mails go to files in `mail`."""
    require_services("postgres")
    database = templates.new_database("postgres", redis=True)
    workdir = tmp_path_factory.mktemp("two-servers")
    mail = workdir / "mail"
    env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(mail), **SHORT_LEASES}
    servers = start_together(*(Server(database, workdir / f"server-{i}.log", extra_env=env) for i in range(2)))
    yield database, servers, mail
    for server in servers:
        server.stop()


@pytest.fixture
def two_servers(server_pair):
    """The pair's database and servers, both running: one an earlier test killed is started again."""
    database, servers, _ = server_pair
    start_together(*(server for server in servers if server.process.poll() is not None))
    return database, servers
