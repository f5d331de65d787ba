"""Log-in throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for a username, or
from an address, the log-in page refuses further tries for LOGIN_COOLOFF_MINUTES and
says how long to wait; a success clears its own failures only; the admin lists lock-outs."""

import html
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
PASSWORD = "correct horse battery staple"
WRONG = "wrong-password-guess"
LIMIT = settings.LOGIN_FAILURE_LIMIT


@pytest.fixture(autouse=True)
def users(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: many log-ins here
    for name in ("alice", "bob"):
        django_user_model.objects.create_user(name, password=PASSWORD)


def log_in(client, username: str, password: str, address: str, path: str = LOGIN):
    return client.post(path, {"username": username, "password": password, "next": "/approvals/"}, REMOTE_ADDR=address)


def assert_locked_out(response, username: str) -> None:
    assert response.status_code == 429
    page = html.unescape(response.content.decode()).replace("\xa0", " ")  # Django's "15\xa0minutes"
    wait = f"{settings.LOGIN_COOLOFF_MINUTES} minutes"
    assert f"Too many failed log-ins for this username or from your address. Try again in {wait}." in page
    assert response["Retry-After"] == str(settings.LOGIN_COOLOFF_MINUTES * 60)
    # Still the log-in page, the username kept, the form going where it was going.
    assert 'id="login-form"' in page and f'value="{username}"' in page and 'value="/approvals/"' in page


def test_the_defaults_are_five_failures_and_fifteen_minutes():
    assert (settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds()) == (5, 900)


def test_a_username_is_locked_out_after_the_limit_whatever_the_address(client):
    for n in range(LIMIT - 1):
        assert log_in(client, "alice", WRONG, f"10.0.0.{n}").status_code == 200  # the form again, "not correct"
    assert_locked_out(log_in(client, "alice", WRONG, "10.0.0.9"), "alice")  # the last failure allowed
    locked = log_in(client, "alice", PASSWORD, "10.0.1.1")  # the right password, from elsewhere
    assert_locked_out(locked, "alice")
    assert "_auth_user_id" not in client.session
    assert log_in(client, "bob", PASSWORD, "10.0.0.1").status_code == 302  # another username from those addresses


def test_an_address_is_locked_out_after_the_limit_whatever_the_username(client):
    for n in range(LIMIT):
        log_in(client, f"nobody{n}", WRONG, "10.0.0.7")
    assert_locked_out(log_in(client, "bob", PASSWORD, "10.0.0.7"), "bob")
    assert log_in(client, "bob", PASSWORD, "10.0.0.8").status_code == 302  # bob from another address


def test_the_admins_log_in_is_throttled_too(client):
    for _ in range(LIMIT):
        log_in(client, "alice", WRONG, "10.0.0.9", path="/admin/login/")
    assert_locked_out(log_in(client, "alice", PASSWORD, "10.0.0.9", path="/admin/login/"), "alice")


def test_a_success_clears_its_usernames_failures_from_its_address(client):
    for _ in range(LIMIT - 1):
        log_in(client, "alice", WRONG, "10.0.0.1")
    assert log_in(client, "alice", PASSWORD, "10.0.0.1").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        log_in(client, "alice", WRONG, "10.0.0.1")
    assert log_in(client, "alice", PASSWORD, "10.0.0.1").status_code == 302


def test_logging_in_as_oneself_does_not_clear_failures_against_others(client):
    """Else one with an account could guess without end, logging in between guesses."""
    for _ in range(LIMIT - 1):
        log_in(client, "alice", WRONG, "10.0.0.5")
    assert log_in(client, "bob", PASSWORD, "10.0.0.5").status_code == 302
    client.logout()
    log_in(client, "alice", WRONG, "10.0.0.5")
    assert_locked_out(log_in(client, "alice", PASSWORD, "10.0.0.6"), "alice")


def test_the_admin_lists_lock_outs_without_passwords_or_tokens(client, django_user_model):
    for n in range(LIMIT):
        client.post(
            LOGIN, {"username": "alice", "password": WRONG, "csrfmiddlewaretoken": "token-value"}, REMOTE_ADDR="10.0.0.3"
        )
    attempt = AccessAttempt.objects.get(username="alice")
    assert (attempt.ip_address, attempt.failures_since_start) == ("10.0.0.3", LIMIT)

    client.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))
    listed = html.unescape(client.get("/admin/axes/accessattempt/", {"locked_out": "yes"}).content.decode())
    assert "alice" in listed and "10.0.0.3" in listed and "Locked Out" in listed
    page = html.unescape(client.get(f"/admin/axes/accessattempt/{attempt.pk}/change/").content.decode())
    assert "alice" in page and WRONG not in page and "token-value" not in page


def test_the_admins_clean_up_of_expired_attempts_works(client, django_user_model):
    expired = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(minutes=1)
    old = AccessAttempt.objects.create(username="alice", ip_address="10.0.0.1", user_agent="", failures_since_start=2)
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=expired)  # auto_now_add on create
    fresh = AccessAttempt.objects.create(username="bob", ip_address="10.0.0.2", user_agent="", failures_since_start=1)
    client.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))
    response = client.post(
        "/admin/axes/accessattempt/", {"action": "cleanup_expired_attempts", "_selected_action": [old.pk, fresh.pk]}
    )
    assert response.status_code == 302
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["bob"]


def test_with_throttling_off_failures_lock_nothing_out(client, settings):
    settings.AXES_ENABLED = False  # LOGIN_FAILURE_LIMIT=0 (tests/chatproject/test_settings.py)
    for _ in range(LIMIT * 2):
        assert log_in(client, "alice", WRONG, "10.0.0.1").status_code == 200
    assert log_in(client, "alice", PASSWORD, "10.0.0.1").status_code == 302
