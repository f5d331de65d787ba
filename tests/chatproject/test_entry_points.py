"""Every entry point, walked: each URL pattern of the project (as another user, as
nobody, as staff, without a CSRF token) and each websocket frame type (as another
user), so that a view or a frame type is covered the day it is added.

The patterns come from Django's resolver; the frame types from
ConversationConsumer.HANDLERS. A pattern whose parameters the walk cannot fill, or a
frame type it does not know, fails the walk. In-process: HTTP through Django's test
client with its CSRF checks on, websockets through channels' communicator.
"""

import json
import re
import uuid
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessFailureLog
from channels.testing import WebsocketCommunicator
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client
from django.urls import URLResolver, get_resolver

from conversations.checkpoints import CHECKPOINT_TABLES_POSTGRES, CHECKPOINT_TABLES_SQLITE
from chatproject.asgi import application
from chatproject.websocket import SameOriginValidator
from conversations.consumers import ConversationConsumer
from conversations.routing import websocket_urlpatterns
from tests.support.in_process import TIMEOUT, Person, receive, run_ended
from tests.support.frames import until_waiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Django's own views (the admin, the login forms) are forms: they take GET and POST.
FORM_VIEWS = ("admin/", "accounts/")
# In alice's title, messages, task and approval: no one else may ever see it.
MARKER = "zanzibar"
BODY = {"title": "taken over"}
PASSWORD = "correct horse battery staple"
# The name the test client's requests are made to; its pages' own origin.
HOST = "testserver"
ORIGIN = f"http://{HOST}"
# The host and port websockets are opened on, as a server's would be, and its origin.
PORT = 8000
SERVER = f"http://127.0.0.1:{PORT}"

# The only patterns open to anyone: Django's forms to log in, log out and reset a
# password (they name no object), and the health check. Static files have no pattern:
# WhiteNoise serves them from its middleware.
PUBLIC = {
    "accounts/login/",
    "accounts/logout/",
    "accounts/password_reset/",
    "accounts/password_reset/done/",
    "accounts/reset/<uidb64>/<token>/",
    "accounts/reset/done/",
    "admin/login/",
    "admin/logout/",
    "healthz",
}
WEBSOCKET_ROUTES = ["ws/conversations/<str:conversation_id>/"]


def routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield {"route": route, "name": pattern.name, "params": sorted(pattern.pattern.regex.groupindex)}


@pytest.fixture(scope="module")
def entry_points() -> dict:
    found = {
        "http": list(routes(get_resolver().url_patterns)),
        "websocket": [entry["route"] for entry in routes(websocket_urlpatterns)],
        "frames": sorted(ConversationConsumer.HANDLERS),
    }
    stale = PUBLIC - {entry["route"] for entry in found["http"]}
    assert not stale, f"PUBLIC names patterns that are gone: {stale}"
    assert found["websocket"] == WEBSOCKET_ROUTES, "a new websocket route: walk it here"
    return found


class Visitor:
    """A browser, through Django's test client with its CSRF checks on: unsafe requests
    carry the CSRF cookie's token in X-CSRFToken and the app's own Origin, unless told
    otherwise. Logged in through the log-in form, when given a username."""

    def __init__(self, username: str | None = None):
        self.client = Client(enforce_csrf_checks=True)
        if username:
            self.login(username)

    def login(self, username: str) -> None:
        self.client.get("/accounts/login/")
        form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": self.token()}
        response = self.client.post("/accounts/login/", form, headers={"Referer": f"{ORIGIN}/accounts/login/"})
        assert response.status_code == 302, response.content
        self.client.get("/")  # refresh the CSRF cookie rotated at login

    def token(self) -> str:
        return self.client.cookies["csrftoken"].value

    def request(self, method: str, path: str, json_body=None, headers: dict | None = None, token: bool = True):
        headers = dict(headers or {})
        if token and "csrftoken" in self.client.cookies:
            headers.setdefault("X-CSRFToken", self.token())
        headers.setdefault("Origin", ORIGIN)
        if json_body is None:
            return self.client.generic(method, path, headers=headers)
        return self.client.generic(method, path, json.dumps(json_body), content_type="application/json", headers=headers)

    def session_id(self) -> str:
        return self.client.cookies["sessionid"].value


def text(response) -> str:
    return response.content.decode()


def guarded(entry_points: dict) -> list[dict]:
    return [entry for entry in entry_points["http"] if entry["route"] not in PUBLIC]


def methods_of(entry: dict, methods: tuple = METHODS) -> list[str]:
    """The methods a view takes: GET and POST for Django's forms; any for ours, which
    answer 405 to the ones they refuse."""
    if entry["route"].startswith(FORM_VIEWS):
        return [method for method in methods if method in ("GET", "POST")]
    return list(methods)


PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def admin_model(route: str) -> str:
    """The model an admin URL is about ("app.model"); view-on-site is walked with a conversation."""
    if route.startswith("admin/r/"):
        return "conversations.conversation"
    app, model = route.split("/")[1:3]
    return f"{app}.{model}"


@dataclass
class World:
    """Alice's objects: one of each kind a URL or a frame can name."""

    conversation: str
    ids: dict[str, str]  # what frames name: message, reply, branch, run, approval, client_id
    admin: dict[str, str]  # admin model -> an object's id, quoted as the admin's URLs quote it
    params: dict[str, str]  # every other URL parameter
    queries: dict[str, list[str]]  # URL name -> query strings that ask for more data

    def value(self, route: str, name: str) -> str:
        if name in {"object_id", "id"}:
            return self.admin[admin_model(route)]
        return self.params[name]

    def path(self, entry: dict, values: dict | None = None) -> str:
        """The pattern filled with alice's objects, or with the given values."""
        try:
            values = values or {name: self.value(entry["route"], name) for name in entry["params"]}
        except KeyError as missing:
            pytest.fail(f"the walk cannot fill {entry['route']!r} ({missing}): name an object for it in world_of()")
        filled = PARAMETER.sub(lambda m: str(values[m[1] or m[2]]), entry["route"])
        return "/" + filled.replace("^", "").replace("$", "")

    def paths(self, entry: dict, values: dict | None = None) -> list[str]:
        """The path, then with each query string that asks for more data."""
        path = self.path(entry, values)
        return [path] + [f"{path}?{query}" for query in self.queries.get(entry["name"], [])]


def stored_uuid(value: str) -> str:
    """A UUID as the database stores it: 32 hex digits on SQLite."""
    return uuid.UUID(value).hex if connection.vendor == "sqlite" else value


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def one(sql: str, params: tuple = ()):
    return query(sql, params)[0][0]


def count(table: str, where: str = "", params: tuple = ()) -> int:
    return one(f"SELECT COUNT(*) FROM {table} {'WHERE ' + where if where else ''}", params)


def checkpoint_rows(thread_id: str) -> int:
    tables = CHECKPOINT_TABLES_POSTGRES if connection.vendor == "postgresql" else CHECKPOINT_TABLES_SQLITE
    return sum(count(table, "thread_id = %s", (thread_id,)) for table in tables)


@sync_to_async
def create_users(*usernames: str) -> None:
    for username in usernames:
        User.objects.create_user(username, password=PASSWORD)


@sync_to_async
def logged_in(username: str) -> tuple[Person, Visitor]:
    """Logged in through the form; as a Person, its websockets carry that log-in's session."""
    visitor = Visitor(username)
    return Person(User.objects.get(username=username), f"sessionid={visitor.session_id()}"), visitor


async def alices_world() -> tuple[Person, Visitor, World]:
    """A conversation of alice's with a task, a regenerated reply (so branches) and a
    run waiting for her approval; bob, a user too."""
    await create_users("alice", "bob")
    alice, visitor = await logged_in("alice")
    conversation = str((await alice.conversation(title=f"{MARKER} plans")).id)
    socket = await alice.open(conversation)
    await socket.chat(f"task buy {MARKER} milk")
    frames = await socket.chat(f"hello {MARKER}")
    reply = next(f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")
    await socket.send({"type": "message.regenerate", "message_id": reply["id"]})
    assert (await socket.receive_until(run_ended))[-1]["run"]["status"] == "succeeded"
    email = f"email bob@example.com {MARKER}: see you"
    await socket.send({"type": "message.send", "content": email, "client_id": "alice-1"})
    frames = await socket.receive_until(until_waiting)
    await socket.close()
    assert frames[-1]["run"]["status"] == "waiting", frames
    approval = next(f["approval"] for f in frames if f["type"] == "approval")
    return alice, visitor, await sync_to_async(world_of)(visitor, conversation, approval)


def world_of(alice: Visitor, conversation: str, approval: dict) -> World:
    messages = alice.request("GET", f"/api/conversations/{conversation}/messages/").json()["results"]
    task = alice.request("GET", "/api/tasks/").json()["results"][0]["id"]
    failed = Visitor()  # a failed log-in: a row of axes's lock-out list
    failed.client.get("/accounts/login/")
    form = {"username": "alice", "password": "wrong", "csrfmiddlewaretoken": failed.token()}
    failed.client.post("/accounts/login/", form)
    checkpoint_pk, checkpoint_id = query(
        "SELECT id, checkpoint_id FROM agent_checkpoint WHERE thread_id = %s ORDER BY checkpoint_id DESC", (conversation,)
    )[0]
    admin = {
        "auth.user": User.objects.get(username="alice").id,
        "auth.group": Group.objects.create(name="walkers").id,
        "conversations.conversation": conversation,
        "conversations.message": messages[0]["id"],
        "conversations.run": approval["run_id"],
        "conversations.approval": quote(approval["id"]),
        "agent.task": task,
        "agent.toolexecution": one("SELECT id FROM agent_toolexecution"),
        "agent.checkpoint": quote(checkpoint_pk),
        "axes.accessattempt": one("SELECT id FROM axes_accessattempt"),
        "axes.accesslog": one("SELECT id FROM axes_accesslog LIMIT 1"),
        "axes.accessfailurelog": AccessFailureLog.objects.create(
            user_agent="", ip_address="127.0.0.1", username="alice", http_accept="", path_info="/accounts/login/",
            locked_out=False,
        ).id,
    }
    params = {
        "conversation_id": conversation,
        "content_type_id": ContentType.objects.get(app_label="conversations", model="conversation").id,
        "kind": "json",
        "app_label": "conversations",
        "url": "no-such-page/",
        "uidb64": "MQ",
        "token": "set-password",
    }
    queries = {
        "api-export": ["format=json", "format=markdown"],
        "api-conversations": [f"q={MARKER}"],
        "api-approvals": ["status=all"],
        "conversations_conversation_checkpoints": [f"checkpoint={checkpoint_id}"],
        "conversations_conversation_changelist": [f"q={MARKER}"],
    }
    ids = {
        "message": messages[0]["id"],
        "reply": next(m["id"] for m in messages if m["role"] == "assistant"),
        "branch": next(m["branch_id"] for m in messages if m["branch_id"]),
        "run": approval["run_id"],
        "approval": approval["id"],
        "client_id": "alice-1",
    }
    return World(conversation, ids, {k: str(v) for k, v in admin.items()}, {k: str(v) for k, v in params.items()}, queries)


def alices_state(world: World) -> dict:
    """Every row of alice's conversation that another user might try to change."""
    key = (stored_uuid(world.conversation),)
    state = {
        table: query(f"SELECT id, {columns} FROM {table} WHERE conversation_id = %s ORDER BY id", key)
        for table, columns in {
            "conversations_message": "content, branch_id",
            "conversations_run": "status, branch_id",
            "conversations_approval": "status, decided_by_id, edited_args",
            "conversations_branch": "parent_id, last_active_at",
            "agent_toolexecution": "status",
        }.items()
    }
    state["conversation"] = query(
        "SELECT title, current_branch_id, updated_at FROM conversations_conversation WHERE id = %s", key
    )
    state["checkpoints"] = checkpoint_rows(world.conversation)
    return state


def database_state(world: World) -> dict:
    tables = [
        "conversations_conversation", "conversations_message", "conversations_run", "conversations_approval",
        "conversations_branch", "agent_task", "agent_toolexecution", "auth_user", "auth_group", "django_session",
        "django_admin_log",
    ]
    state = {table: count(table) for table in tables}
    state["passwords"] = query("SELECT username, password FROM auth_user ORDER BY username")
    return {**state, **alices_state(world)}


def assert_redirected_to(response, login: str, where: str) -> None:
    assert response.status_code == 302, (where, response.status_code, text(response)[:300])
    assert response.headers["location"].startswith(f"{login}?next="), (where, response.headers["location"])


def assert_shows_nothing_of(world: World, response, where: str) -> None:
    for secret in (MARKER, world.conversation, *world.ids.values()):
        assert secret not in text(response), (where, secret)


# --- HTTP -------------------------------------------------------------------------


async def test_another_user_gets_404_for_alices_objects_on_every_url(entry_points, agent_runtime):
    _, alice, world = await alices_world()
    await sync_to_async(another_user_gets_404_for_alices_objects_on_every_url)(entry_points, alice, world)


def another_user_gets_404_for_alices_objects_on_every_url(entry_points: dict, alice: Visitor, world: World) -> None:
    bob = Visitor("bob")
    before = alices_state(world)
    for entry in guarded(entry_points):
        if entry["route"].startswith("admin/"):
            # bob is not staff: every admin URL, whatever it names, asks him to log in.
            for path in world.paths(entry):
                for method in methods_of(entry):
                    response = bob.request(method, path, BODY)
                    assert_redirected_to(response, "/admin/login/", f"{method} {path}")
        elif entry["params"]:
            assert_same_as_for_a_missing_object(bob, world, entry)
        else:
            assert_only_bobs_own_data(bob, world, entry)
    assert alices_state(world) == before
    for entry in guarded(entry_points):  # what bob was refused is there, and alice's
        if entry["params"] and not entry["route"].startswith("admin/"):
            assert alice.request("GET", world.paths(entry)[-1]).status_code == 200, entry["route"]


def assert_same_as_for_a_missing_object(bob: Visitor, world: World, entry: dict) -> None:
    """A 404 (or a 405 before any lookup), exactly as for an object that does not exist:
    bob learns nothing, not even that it exists."""
    missing = {name: str(uuid.uuid4()) for name in entry["params"]}
    for method in METHODS:
        for path, missing_path in zip(world.paths(entry), world.paths(entry, missing)):
            mine = bob.request(method, path, BODY)
            nobodys = bob.request(method, missing_path, BODY)
            where = f"{method} {path}"
            assert mine.status_code in (404, 405), (where, mine.status_code, text(mine)[:300])
            assert (mine.status_code, unmasked(text(mine))) == (nobodys.status_code, unmasked(text(nobodys))), where
            assert_shows_nothing_of(world, mine, where)
            if method == "GET":
                assert mine.status_code == 404, where


def unmasked(page: str) -> str:
    """The page with its CSRF token's value left out: Django masks it anew in every
    response (against BREACH), so it differs between any two pages."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', page)


def assert_only_bobs_own_data(bob: Visitor, world: World, entry: dict) -> None:
    for path in world.paths(entry):
        for method in METHODS:
            response = bob.request(method, path, BODY)
            where = f"{method} {path}"
            assert response.status_code in (200, 201, 405), (where, response.status_code, text(response)[:300])
            assert_shows_nothing_of(world, response, where)


async def test_every_url_needs_a_login_and_the_admin_needs_staff(entry_points, agent_runtime):
    _, _, world = await alices_world()
    await sync_to_async(every_url_needs_a_login_and_the_admin_needs_staff)(entry_points, world)


def every_url_needs_a_login_and_the_admin_needs_staff(entry_points: dict, world: World) -> None:
    anonymous = Visitor()
    anonymous.client.get("/accounts/login/")  # a CSRF cookie, so that the login check is what answers
    for entry in guarded(entry_points):
        for path in world.paths(entry):
            for method in methods_of(entry):
                response = anonymous.request(method, path, BODY)
                where = f"{method} {path}"
                if entry["route"].startswith("api/"):
                    assert response.status_code == 401, (where, response.status_code)
                    assert response.json()["error"] == "not_logged_in", where
                else:
                    login = "/admin/login/" if entry["route"].startswith("admin/") else "/accounts/login/"
                    assert_redirected_to(response, login, where)
                assert_shows_nothing_of(world, response, where)

    User.objects.create_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    root = Visitor("root")
    for entry in guarded(entry_points):
        if not entry["route"].startswith("admin/"):
            continue
        for path in world.paths(entry):
            response = root.request("GET", path)
            assert response.status_code < 500, (path, text(response)[-2000:])
            if entry["name"] and entry["name"].endswith(("_change", "_history", "_checkpoints", "_export")):
                assert response.status_code == 200, (path, response.status_code)


async def test_every_unsafe_request_needs_the_csrf_token(entry_points, agent_runtime):
    _, alice, world = await alices_world()
    await sync_to_async(every_unsafe_request_needs_the_csrf_token)(entry_points, alice, world)


def every_unsafe_request_needs_the_csrf_token(entry_points: dict, alice: Visitor, world: World) -> None:
    before = database_state(world)
    for entry in entry_points["http"]:
        path = world.path(entry)
        for method in methods_of(entry, UNSAFE):
            # A valid session, no token: what a page of another site can make a browser send.
            response = alice.request(method, path, BODY, token=False)
            assert response.status_code == 403, (method, path, response.status_code)
            assert "CSRF verification failed" in text(response), (method, path)
            if entry["route"].startswith("api/"):  # the API answers in JSON, as its own errors
                assert response.json()["error"] == "csrf_failed", (method, path)
    assert database_state(world) == before
    assert alice.request("GET", "/api/conversations/").status_code == 200  # still logged in
    unknown = alice.request("GET", "/api/no-such-endpoint/")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")

    api = [entry for entry in entry_points["http"] if entry["route"].startswith("api/")]
    refused_from_elsewhere(alice, world, api)
    answers = with_the_token(alice, world, api)
    assert answers[("POST", "api-conversations")] == 201
    assert answers[("PATCH", "api-conversation")] == 200
    assert answers[("DELETE", "api-conversation")] == 204
    assert count("conversations_conversation", "id = %s", (stored_uuid(world.conversation),)) == 0

    visitor = Visitor()
    visitor.client.get("/accounts/login/")
    form = {"username": "bob", "password": PASSWORD}
    assert visitor.client.post("/accounts/login/", form).status_code == 403
    visitor.login("bob")  # the same form with the token: 302, logged in


def refused_from_elsewhere(session: Visitor, world: World, entries: list[dict]) -> None:
    """The right token is not enough from a foreign Origin."""
    for entry in entries:
        for method in UNSAFE:
            response = session.request(method, world.path(entry), BODY, headers={"Origin": "http://evil.example"})
            assert response.status_code == 403, (method, entry["route"])


def with_the_token(session: Visitor, world: World, entries: list[dict]) -> dict:
    """Each unsafe request with the token, deletions last: none is refused for CSRF."""
    answers = {}
    for method in sorted(UNSAFE, key=lambda m: m == "DELETE"):
        for entry in entries:
            response = session.request(method, world.path(entry), BODY)
            assert response.status_code != 403 and response.status_code < 500, (method, entry["route"], text(response))
            answers[(method, entry["name"])] = response.status_code
    return answers


# --- WebSocket --------------------------------------------------------------------


def frames_naming(ids: dict) -> dict[str, list[dict]]:
    """Each frame type that takes an id, naming the objects in `ids`."""
    return {
        "message.edit": [{"type": "message.edit", "message_id": ids["message"], "content": "mine now"}],
        "message.regenerate": [{"type": "message.regenerate", "message_id": ids["reply"]}],
        "branch.switch": [
            {"type": "branch.switch", "message_id": ids["reply"]},
            {"type": "branch.switch", "branch_id": ids["branch"]},
        ],
        "run.cancel": [{"type": "run.cancel", "run_id": ids["run"]}],
        "run.retry": [{"type": "run.retry", "run_id": ids["run"]}],
        "approval.decide": [
            {"type": "approval.decide", "approval_id": ids["approval"], "decision": decision, "args": {"to": "bob@evil.example"}}
            for decision in ("approve", "reject", "edit")
        ],
    }


def frames_acting_on_the_socket(ids: dict) -> dict[str, tuple[dict, str]]:
    """Frame types that take no object id (with alice's ids riding along), and the
    frame they answer with on bob's own conversation."""
    return {
        "ping": ({"type": "ping", "conversation_id": ids["conversation"]}, "pong"),
        "message.send": (
            {"type": "message.send", "content": "mine", "client_id": ids["client_id"], "conversation_id": ids["conversation"]},
            "message",
        ),
    }


@sync_to_async
def both_states(world: World) -> tuple[dict, dict]:
    return alices_state(world), database_state(world)


async def test_every_frame_naming_alices_objects_is_not_found_and_changes_nothing(entry_points, agent_runtime):
    alice, _, world = await alices_world()
    bob, _ = await logged_in("bob")
    ids = {**world.ids, "conversation": world.conversation}
    naming, acting = frames_naming(ids), frames_acting_on_the_socket(ids)
    assert set(naming) | set(acting) == set(entry_points["frames"]), "a new frame type: walk it here"

    # Let in (the consumer accepts, to give its reason), then closed before any frame.
    refused = connect(bob, world.conversation, SERVER)
    assert (await refused.connect(timeout=TIMEOUT))[0]
    assert await refused.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}

    own = (await bob.conversation()).id
    watcher, ws = await alice.open(world.conversation), await bob.open(own)
    await ws.chat("hello")
    before = await both_states(world)
    missing = frames_naming({name: uuid.uuid4().hex for name in ids})
    for kind, frames in naming.items():
        for frame, unknown in zip(frames, missing[kind]):
            await ws.send(frame)
            answer = await ws.receive()
            assert answer["type"] == "error" and answer["code"] == "not_found", (frame, answer)
            await ws.send(unknown)
            assert await ws.receive() == answer, frame  # the same as for an id that exists nowhere
    assert await both_states(world) == before

    for kind, (frame, answer) in acting.items():
        await ws.send(frame)
        assert (await ws.receive())["type"] == answer, kind
    assert (await ws.receive_until(run_ended))[-1]["run"]["status"] == "succeeded"
    assert (await both_states(world))[0] == before[0]
    # "hello" and "mine", each with its reply: the send landed in bob's conversation.
    messages = await sync_to_async(count)("conversations_message", "conversation_id = %s", (stored_uuid(str(own)),))
    assert messages == 4

    await watcher.send({"type": "ping"})
    assert (await watcher.receive())["type"] == "pong"  # alice's socket heard nothing of bob's
    await watcher.close()
    await ws.close()


FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://evil.example",
    "http://127.0.0.1.evil.example",
    "http://127.0.0.1@evil.example",
    "null",
    "file://",
]


@pytest.fixture
def origin_check(settings, monkeypatch):
    """The hosts the test servers serve; the socket's Origin check made anew, as Django's
    CSRF check reads CSRF_TRUSTED_ORIGINS once (into cached properties)."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    monkeypatch.setattr(SameOriginValidator, "csrf", CsrfViewMiddleware(lambda request: None))


def connect(person: Person, conversation_id: str, origin: str | None, host: str = "127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"host", f"{host}:{PORT}".encode()), (b"cookie", person.cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)


async def assert_refused(person: Person, conversation_id: str, origin: str | None) -> None:
    """Closed before it is accepted: a server answers the handshake with 403."""
    connected, _ = await connect(person, conversation_id, origin).connect(timeout=TIMEOUT)
    assert not connected, origin


async def assert_opens(person: Person, conversation_id: str, origin: str, host: str = "127.0.0.1") -> None:
    socket = connect(person, conversation_id, origin, host)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected, origin
    assert (await receive(socket))["type"] == "snapshot", origin
    await socket.disconnect()


async def test_a_websocket_needs_an_allowed_origin_and_a_missing_one_is_refused(people, origin_check):
    alice = await people()
    conversation = (await alice.conversation()).id
    # No Origin at all is refused too: browsers always send one, and a script can.
    # Another app on this machine (another port), the same app under another of its host
    # names, or another scheme, is another origin, as for Django's CSRF check.
    others = [f"http://127.0.0.1:{PORT + 1}", "http://127.0.0.1", f"http://localhost:{PORT}", f"https://127.0.0.1:{PORT}"]
    for origin in [*FOREIGN_ORIGINS, *others, None]:
        await assert_refused(alice, conversation, origin)
    for host in ["127.0.0.1", "localhost"]:
        await assert_opens(alice, conversation, f"http://{host}:{PORT}", host)


async def test_a_wildcard_host_list_does_not_open_the_websocket_to_every_origin(people, origin_check, settings):
    settings.ALLOWED_HOSTS = ["*"]
    alice = await people()
    conversation = (await alice.conversation()).id
    for origin in [*FOREIGN_ORIGINS, None]:
        await assert_refused(alice, conversation, origin)
    await assert_opens(alice, conversation, SERVER)


async def test_a_trusted_origin_may_open_the_websocket(people, origin_check, settings):
    """A page served under another name (a proxy's) is let in by DJANGO_CSRF_TRUSTED_ORIGINS,
    wildcards included, as Django's CSRF check lets its POSTs in."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.corp.example"]
    alice = await people()
    conversation = (await alice.conversation()).id
    for origin in ["https://chat.example.com", "https://team.corp.example"]:
        await assert_opens(alice, conversation, origin)
    for origin in ["https://other.example.com", "http://chat.example.com", "http://team.corp.example"]:
        await assert_refused(alice, conversation, origin)
