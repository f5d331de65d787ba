"""Production settings refuse debug pages and the public default secret key; a bad number
is refused with its name.

chatproject/settings.py reads the environment as it runs, once per process: each case
runs the module anew on its own environment, in this process. One case goes through
`manage.py check`, to show that a refusal stops the start with its message.
"""

import re
import runpy

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from chatproject import settings as settings_module
from tests.live import base_env, manage

PRODUCTION = {"DJANGO_ALLOWED_HOSTS": "chat.example.com"}
# Variables whose absence some cases rely on (the default key, debug off).
UNSET = ("DJANGO_SECRET_KEY", "DJANGO_DEBUG")


@pytest.fixture
def read_settings(monkeypatch):
    """Runs the settings module on the test servers' environment with `env` on top; its
    values by name."""

    def read(**env: str) -> dict:
        for name in UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in {"DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", **env}.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(settings_module.__file__)

    return read


@pytest.mark.parametrize(
    "env, refused",
    [
        (PRODUCTION, "set DJANGO_SECRET_KEY"),
        ({**PRODUCTION, "DJANGO_SECRET_KEY": "s" * 50, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG is on"),
        ({**PRODUCTION, "DJANGO_SECRET_KEY": "s" * 50}, None),
        ({"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1", "DJANGO_DEBUG": "1"}, None),  # development
    ],
)
def test_production_settings_refuse_debug_and_the_default_key(read_settings, env, refused):
    if refused:
        with pytest.raises(ImproperlyConfigured, match=re.escape(refused)):
            read_settings(**env)
    else:
        read_settings(**env)


@pytest.mark.parametrize(
    "env, refused",
    [
        ({"LOGIN_FAILURE_LIMIT": "five"}, 'LOGIN_FAILURE_LIMIT is a whole number, not "five"'),
        ({"LOGIN_COOLOFF_MINUTES": "0"}, "LOGIN_COOLOFF_MINUTES is at least 1"),
        ({"HTTP_IDLE_TIMEOUT_SECONDS": "-1"}, "HTTP_IDLE_TIMEOUT_SECONDS is at least 1"),
        ({"CHAT_TIMEOUT_SECONDS": "soon"}, 'CHAT_TIMEOUT_SECONDS is a number, not "soon"'),
        ({"CHAT_MAX_STEPS": "0"}, "CHAT_MAX_STEPS is at least 1"),
    ],
)
def test_a_bad_number_is_refused_with_its_name(read_settings, env, refused):
    with pytest.raises(ImproperlyConfigured, match=re.escape(refused)):
        read_settings(**env)


def test_a_model_no_provider_reads_is_refused_with_its_name(read_settings, settings):
    """The agent app checks every offered model when Django starts (AgentConfig.ready)."""
    settings.CHAT_MODELS = read_settings(CHAT_MODELS="openai:x,nonsense")["CHAT_MODELS"]
    with pytest.raises(ImproperlyConfigured, match=re.escape("CHAT_MODEL / CHAT_MODELS: 'nonsense'")):
        apps.get_app_config("agent").ready()


def test_no_failure_limit_turns_log_in_throttling_off(read_settings):
    assert read_settings(LOGIN_FAILURE_LIMIT="0")["AXES_ENABLED"] is False


@pytest.mark.live
def test_a_refused_setting_stops_the_start_with_its_message(tmp_path):
    result = manage({**base_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3"), **PRODUCTION}, "check", check=False)
    assert result.returncode != 0 and "set DJANGO_SECRET_KEY" in result.stderr
