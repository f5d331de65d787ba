"""Refusals (403, 404, 400) are logged as one line each, with no traceback: a staff user
without permissions cannot flood the log; a server error keeps its traceback."""

import logging

import pytest
from django.contrib.auth.models import User

from conversations.models import Conversation

pytestmark = pytest.mark.django_db


def test_a_staff_users_refusals_are_one_line_each(client, app_log, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path  # collectstatic's output, which WhiteNoise looks for
    dave = User.objects.create_user("dave", password="x", is_staff=True)
    conversation = Conversation.objects.create(user=dave)
    client.force_login(dave)
    refused = [
        "/admin/conversations/conversation/",
        "/admin/conversations/message/",
        "/admin/agent/checkpoint/",
        f"/admin/conversations/conversation/{conversation.id}/export/json/",
    ]
    for path in refused:
        assert client.get(path).status_code == 403, path
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/", HTTP_HOST="evil.example").status_code == 400  # DisallowedHost, on django.security

    lines = app_log.getvalue().splitlines()
    assert [line for line in lines if line.startswith("Forbidden (Permission denied): ")] == [
        f"Forbidden (Permission denied): {path}" for path in refused
    ]
    assert "Not Found: /no-such-page/" in lines
    assert any(line.startswith("Invalid HTTP_HOST header: 'evil.example'") for line in lines)
    assert "Traceback" not in app_log.getvalue()


def test_a_server_error_keeps_its_traceback(app_log):
    try:
        raise RuntimeError("the view failed")
    except RuntimeError:
        logging.getLogger("django.request").exception("Internal Server Error: /x/", extra={"status_code": 500})
    logged = app_log.getvalue()
    assert "Internal Server Error: /x/" in logged and "Traceback" in logged and "RuntimeError: the view failed" in logged
