"""Production settings refuse debug pages and the public default secret key."""

import pytest

from tests.live import base_env, manage


@pytest.mark.parametrize(
    "env, refused",
    [
        ({"DJANGO_ALLOWED_HOSTS": "chat.example.com"}, "set DJANGO_SECRET_KEY"),
        ({"DJANGO_ALLOWED_HOSTS": "chat.example.com", "DJANGO_SECRET_KEY": "s" * 50, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG is on"),
        ({"DJANGO_ALLOWED_HOSTS": "chat.example.com", "DJANGO_SECRET_KEY": "s" * 50}, None),
        ({"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1", "DJANGO_DEBUG": "1"}, None),  # development
    ],
)
def test_production_settings_refuse_debug_and_the_default_key(env, refused, tmp_path):
    result = manage({**base_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3"), **env}, "check", check=False)
    if refused:
        assert result.returncode != 0 and refused in result.stderr
    else:
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "env, refused",
    [
        ({"LOGIN_FAILURE_LIMIT": "five"}, 'LOGIN_FAILURE_LIMIT is a whole number, not "five"'),
        ({"LOGIN_COOLOFF_MINUTES": "0"}, "LOGIN_COOLOFF_MINUTES is at least 1"),
        ({"HTTP_IDLE_TIMEOUT_SECONDS": "-1"}, "HTTP_IDLE_TIMEOUT_SECONDS is at least 1"),
        ({"CHAT_TIMEOUT_SECONDS": "soon"}, 'CHAT_TIMEOUT_SECONDS is a number, not "soon"'),
        ({"CHAT_MAX_STEPS": "0"}, "CHAT_MAX_STEPS is at least 1"),
        ({"CHAT_MODELS": "openai:x,nonsense"}, "CHAT_MODEL / CHAT_MODELS: 'nonsense'"),
    ],
)
def test_a_bad_number_is_refused_with_its_name(env, refused, tmp_path):
    result = manage({**base_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3"), **env}, "check", check=False)
    assert result.returncode != 0 and refused in result.stderr


def test_no_failure_limit_turns_log_in_throttling_off(tmp_path):
    env = {**base_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "LOGIN_FAILURE_LIMIT": "0"}
    shown = manage(env, "shell", "-v", "0", "-c", "from django.conf import settings; print(settings.AXES_ENABLED)")
    assert shown.stdout.split() == ["False"]
