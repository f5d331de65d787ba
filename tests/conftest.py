import pytest

from tests.live import Server, Session, Templates, postgres_available, redis_available

# The in-process harness's fixtures (agent_runtime, people…), for every test.
pytest_plugins = ["tests.support.in_process"]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    # PostgreSQL runs with Redis as the channel layer: the production path.
    pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


# Layers that start real processes: the server's (a live test), or a bench's.
PROCESS_LAYERS = ("fault", "bench", "e2e")


def pytest_collection_modifyitems(items):
    """Mark `live` every test that starts real server processes, so that the in-process
    layer runs alone with `-m "not live"`."""
    for item in items:
        layer = item.path.relative_to(item.config.rootpath / "tests").parts[0]
        if layer in PROCESS_LAYERS or "templates" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)


def require_services(backend: str) -> None:
    if backend == "postgres":
        if not postgres_available():
            pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")
        if not redis_available():
            pytest.skip("Redis is not reachable (set REDIS_URL)")


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    made = Templates(tmp_path_factory.mktemp("databases"))
    yield made
    if "postgres" in made.made:
        made.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request):
    require_services(request.param)
    return request.param


@pytest.fixture
def database(templates, backend):
    return templates.new_database(backend, redis=backend == "postgres")


@pytest.fixture
def make_server(database, tmp_path):
    servers = []

    def make(**extra_env) -> Server:
        server = Server(database, tmp_path / f"server-{len(servers)}.log", extra_env=extra_env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server):
    return make_server().start()


@pytest.fixture
def alice(server):
    return Session(server, "alice")


@pytest.fixture
def bob(server):
    return Session(server, "bob")


@pytest.fixture
def mail_dir(tmp_path):
    return tmp_path / "mail"


@pytest.fixture
def mail_server(make_server, mail_dir):
    """Makes servers that write their e-mails to files in `mail_dir`."""

    def make(**env):
        return make_server(
            EMAIL_BACKEND=env.pop("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"),
            EMAIL_FILE_PATH=str(mail_dir),
            **env,
        )

    return make
