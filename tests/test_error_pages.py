"""A page that is not there, or a crash, outside the API: the app's own pages, in its
layout, with a way back; under /api/ the JSON errors stay (tests/test_entry_points.py)."""

import pytest
from django.template.loader import render_to_string

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_the_apps_not_found_page(client, django_user_model, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path  # collectstatic's output, which WhiteNoise looks for
    client.force_login(django_user_model.objects.create_user("alice", password="x"))
    for path in ("/no-such-page/", "/c/00000000-0000-0000-0000-000000000000/"):
        response = client.get(path)
        assert response.status_code == 404
        page = response.content.decode()
        assert "<title>Not found · Agent Chat</title>" in page and 'href="/">Start a new chat</a>' in page, path
        assert 'id="logout-form"' in page  # the app's top bar, signed in
    assert client.get("/api/no-such-endpoint/").json()["error"] == "not_found"


def test_the_server_error_page_renders_without_a_request():
    # Django renders 500.html with no request and no context processors.
    page = render_to_string("500.html")
    assert "<title>Server error · Agent Chat</title>" in page and 'href="/">Back to your chats</a>' in page
