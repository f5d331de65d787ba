"""The browser layer: one Chromium for the whole layer, a context of its own for each test;
one database and one server per module, each test logged in as a user of its own.

A test sees only what its user made (conversations, approvals, tasks: every page and
endpoint shows a user their own), so the tests of a module share its server and still
do not depend on each other or on their order.
"""

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_services
from tests.live import Server, create_user

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
E2E = Path(__file__).resolve().parent


def pytest_itemcollected(item):
    """Under pytest-xdist (`--dist loadgroup`) a module's tests run in one process, which
    starts the module's server once."""
    item.add_marker(pytest.mark.xdist_group(f"e2e:{item.module.__name__}"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The browser layer runs after every other test of the session. Playwright's sync API
    marks its event loop as the thread's running loop between its calls, for as long as
    it lives: an asyncio test run after the browser started would find that loop running.
    trylast: after other plugins have reordered (pytest-django sorts by database use)."""
    items.sort(key=lambda item: item.path.is_relative_to(E2E))  # stable: each part keeps its order


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def open_page(browser, **context_options):
    """A page in a context of its own (its own cookies and storage); any JavaScript error
    on it fails the test."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser):
    with open_page(browser) as page:
        yield page


@pytest.fixture(scope="module")
def backend():
    """The browser drives the production path, PostgreSQL with Redis as the channel layer;
    test_browser.py drives the zero-setup default (SQLite) too. The in-process and live
    layers run the app on both."""
    require_services("postgres")
    return "postgres"


@pytest.fixture(scope="module")
def database(templates, backend):
    return templates.new_database(backend, redis=backend == "postgres")


@pytest.fixture(scope="module")
def mail_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="module")
def server_env():
    """The module's server's settings, besides the e-mail files; a module that needs others
    defines its own."""
    return {}


@pytest.fixture(scope="module")
def server(database, mail_dir, server_env, tmp_path_factory):
    """The module's server. E-mails go to files in `mail_dir` (see `outbox`)."""
    server = Server(
        database,
        tmp_path_factory.mktemp("server") / "server.log",
        extra_env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(mail_dir),
            **server_env,
        },
    )
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def user(database) -> str:
    """A user of the test's own (password PASSWORD), so that what it sees is what it made."""
    return new_user(database)


def new_user(database, *, superuser: bool = False) -> str:
    username = f"user-{uuid.uuid4().hex[:8]}"
    create_user(database, username, superuser=superuser)
    return username


class Outbox:
    """The e-mails the module's server wrote during one test. The tests of a module run one
    after another and each waits for its runs to end, so a file that appears meanwhile
    is the test's own."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.before = set(directory.iterdir())

    def sent(self) -> list[str]:
        return [path.read_text() for path in sorted(set(self.directory.iterdir()) - self.before)]


@pytest.fixture
def outbox(mail_dir) -> Outbox:
    return Outbox(mail_dir)


@pytest.fixture
def screenshot(page):
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return take
