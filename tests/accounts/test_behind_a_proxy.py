"""Behind a proxy, daphne started with --proxy-headers takes the client's address from
X-Forwarded-For (README, "Behind a proxy"): log-ins are throttled per client address,
not per proxy."""

import pytest

from tests.live import DAPHNE_FLAGS, PASSWORD, Server, Session

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the server's options, not the database's

LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


@pytest.fixture
def proxied(database, tmp_path):
    server = Server(database, tmp_path / "server.log", daphne_flags=[*DAPHNE_FLAGS, "--proxy-headers"]).start()
    yield server
    server.stop()


def log_in(server, username: str, password: str, client_address: str) -> int:
    visitor = Session(server, None)
    visitor.http.get("/accounts/login/")
    form = {"username": username, "password": password, "csrfmiddlewaretoken": visitor.http.cookies["csrftoken"]}
    return visitor.http.post("/accounts/login/", data=form, headers={"X-Forwarded-For": client_address}).status_code


def test_log_ins_are_throttled_per_forwarded_address(proxied):
    for n in range(LIMIT):
        log_in(proxied, f"nobody{n}", "wrong", "203.0.113.5")
    assert log_in(proxied, "bob", PASSWORD, "203.0.113.5") == 429
    assert log_in(proxied, "bob", PASSWORD, "203.0.113.6") == 302  # another client of the same proxy
