"""Every entry point, walked: each URL pattern of the project (as another user, as
nobody, as staff, without a CSRF token) and each websocket frame type (as another
user), so that a view or a frame type is covered the day it is added.

The patterns come from Django's resolver in a `manage.py shell` with the servers'
settings; the frame types from ConversationConsumer.HANDLERS. A pattern whose
parameters the walk cannot fill, or a frame type it does not know, fails the walk.
"""

import json
import re
import uuid
from dataclasses import dataclass

import pytest
import websockets
from django.contrib.admin.utils import quote

from tests.live import PASSWORD, Session, base_env, chat, create_superuser, manage, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Django's own views (the admin, the login forms) are forms: they take GET and POST.
FORM_VIEWS = ("admin/", "accounts/")
# In alice's title, messages, task and approval: no one else may ever see it.
MARKER = "zanzibar"
BODY = {"title": "taken over"}

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

ENTRY_POINTS = """
import json
from django.urls import URLResolver, get_resolver
from conversations.consumers import ConversationConsumer
from conversations.routing import websocket_urlpatterns

def routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield {"route": route, "name": pattern.name, "params": sorted(pattern.pattern.regex.groupindex)}

print(json.dumps({
    "http": list(routes(get_resolver().url_patterns)),
    "websocket": [entry["route"] for entry in routes(websocket_urlpatterns)],
    "frames": sorted(ConversationConsumer.HANDLERS),
}))
"""


@pytest.fixture(scope="module")
def entry_points(tmp_path_factory) -> dict:
    env = {**base_env(), "SQLITE_PATH": str(tmp_path_factory.mktemp("urls") / "unused.sqlite3")}
    found = json.loads(manage(env, "shell", "-v", "0", "-c", ENTRY_POINTS).stdout.splitlines()[-1])
    stale = PUBLIC - {entry["route"] for entry in found["http"]}
    assert not stale, f"PUBLIC names patterns that are gone: {stale}"
    assert found["websocket"] == WEBSOCKET_ROUTES, "a new websocket route: walk it here"
    return found


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
            pytest.fail(f"the walk cannot fill {entry['route']!r} ({missing}): name an object for it in alices_world()")
        filled = PARAMETER.sub(lambda m: str(values[m[1] or m[2]]), entry["route"])
        return "/" + filled.replace("^", "").replace("$", "")

    def paths(self, entry: dict, values: dict | None = None) -> list[str]:
        """The path, then with each query string that asks for more data."""
        path = self.path(entry, values)
        return [path] + [f"{path}?{query}" for query in self.queries.get(entry["name"], [])]


def stored_uuid(database, value: str) -> str:
    """A UUID as the database stores it: 32 hex digits on SQLite."""
    return uuid.UUID(value).hex if database.backend == "sqlite" else value


def one(database, sql: str, params: tuple = ()):
    return database.query(sql, params)[0][0]


def until_waiting(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed", "cancelled"}


async def alices_world(alice: Session, database) -> World:
    """A conversation of alice's with a task, a regenerated reply (so branches) and a
    run waiting for her approval."""
    conversation = alice.create_conversation(f"{MARKER} plans")["id"]
    async with alice.websocket(conversation) as ws:
        await receive(ws)
        await chat(ws, f"task buy {MARKER} milk")
        frames = await chat(ws, f"hello {MARKER}")
        reply = next(f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")
        await send(ws, {"type": "message.regenerate", "message_id": reply["id"]})
        assert (await receive_until(ws, run_ended))[-1]["run"]["status"] == "succeeded"
        email = f"email bob@example.com {MARKER}: see you"
        await send(ws, {"type": "message.send", "content": email, "client_id": "alice-1"})
        frames = await receive_until(ws, until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approval = next(f["approval"] for f in frames if f["type"] == "approval")
    messages = alice.request("GET", f"/api/conversations/{conversation}/messages/").json()["results"]
    task = alice.request("GET", "/api/tasks/").json()["results"][0]["id"]
    failed = Session(alice.server, None)  # a failed log-in: a row of axes's lock-out list
    failed.http.get("/accounts/login/")
    token = failed.http.cookies["csrftoken"]
    failed.http.post("/accounts/login/", data={"username": "alice", "password": "wrong", "csrfmiddlewaretoken": token})
    checkpoint_pk, checkpoint_id = database.query(
        "SELECT id, checkpoint_id FROM agent_checkpoint WHERE thread_id = %s ORDER BY checkpoint_id DESC", (conversation,)
    )[0]
    admin = {
        "auth.user": one(database, "SELECT id FROM auth_user WHERE username = 'alice'"),
        "auth.group": one(database, "INSERT INTO auth_group (name) VALUES ('walkers') RETURNING id"),
        "conversations.conversation": conversation,
        "conversations.message": messages[0]["id"],
        "conversations.run": approval["run_id"],
        "conversations.approval": quote(approval["id"]),
        "agent.task": task,
        "agent.toolexecution": one(database, "SELECT id FROM agent_toolexecution"),
        "agent.checkpoint": quote(checkpoint_pk),
        "axes.accessattempt": one(database, "SELECT id FROM axes_accessattempt"),
        "axes.accesslog": one(database, "SELECT id FROM axes_accesslog LIMIT 1"),
        "axes.accessfailurelog": one(
            database,
            "INSERT INTO axes_accessfailurelog (user_agent, ip_address, username, http_accept, path_info, attempt_time, locked_out) "
            "VALUES ('', '127.0.0.1', 'alice', '', '/accounts/login/', CURRENT_TIMESTAMP, FALSE) RETURNING id",
        ),
    }
    params = {
        "conversation_id": conversation,
        "content_type_id": one(
            database, "SELECT id FROM django_content_type WHERE app_label = 'conversations' AND model = 'conversation'"
        ),
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


def alices_state(database, world: World) -> dict:
    """Every row of alice's conversation that another user might try to change."""
    key = (stored_uuid(database, world.conversation),)
    state = {
        table: database.query(f"SELECT id, {columns} FROM {table} WHERE conversation_id = %s ORDER BY id", key)
        for table, columns in {
            "conversations_message": "content, branch_id",
            "conversations_run": "status, branch_id",
            "conversations_approval": "status, decided_by_id, edited_args",
            "conversations_branch": "parent_id, last_active_at",
            "agent_toolexecution": "status",
        }.items()
    }
    state["conversation"] = database.query(
        "SELECT title, current_branch_id, updated_at FROM conversations_conversation WHERE id = %s", key
    )
    state["checkpoints"] = database.checkpoint_rows(world.conversation)
    return state


def database_state(database, world: World) -> dict:
    tables = [
        "conversations_conversation", "conversations_message", "conversations_run", "conversations_approval",
        "conversations_branch", "agent_task", "agent_toolexecution", "auth_user", "auth_group", "django_session",
        "django_admin_log",
    ]
    state = {table: database.count(table) for table in tables}
    state["passwords"] = database.query("SELECT username, password FROM auth_user ORDER BY username")
    return {**state, **alices_state(database, world)}


def assert_redirected_to(response, login: str, where: str) -> None:
    assert response.status_code == 302, (where, response.status_code, response.text[:300])
    assert response.headers["location"].startswith(f"{login}?next="), (where, response.headers["location"])


def assert_shows_nothing_of(world: World, response, where: str) -> None:
    for secret in (MARKER, world.conversation, *world.ids.values()):
        assert secret not in response.text, (where, secret)


# --- HTTP -------------------------------------------------------------------------


async def test_another_user_gets_404_for_alices_objects_on_every_url(entry_points, server, alice, bob, database):
    world = await alices_world(alice, database)
    before = alices_state(database, world)
    for entry in guarded(entry_points):
        if entry["route"].startswith("admin/"):
            # bob is not staff: every admin URL, whatever it names, asks him to log in.
            for path in world.paths(entry):
                for method in methods_of(entry):
                    response = bob.request(method, path, json=BODY, follow_redirects=False)
                    assert_redirected_to(response, "/admin/login/", f"{method} {path}")
        elif entry["params"]:
            assert_same_as_for_a_missing_object(bob, world, entry)
        else:
            assert_only_bobs_own_data(bob, world, entry)
    assert alices_state(database, world) == before
    for entry in guarded(entry_points):  # what bob was refused is there, and alice's
        if entry["params"] and not entry["route"].startswith("admin/"):
            assert alice.request("GET", world.paths(entry)[-1]).status_code == 200, entry["route"]


def assert_same_as_for_a_missing_object(bob: Session, world: World, entry: dict) -> None:
    """A 404 (or a 405 before any lookup), exactly as for an object that does not exist:
    bob learns nothing, not even that it exists."""
    missing = {name: str(uuid.uuid4()) for name in entry["params"]}
    for method in METHODS:
        for path, missing_path in zip(world.paths(entry), world.paths(entry, missing)):
            mine = bob.request(method, path, json=BODY)
            nobodys = bob.request(method, missing_path, json=BODY)
            where = f"{method} {path}"
            assert mine.status_code in (404, 405), (where, mine.status_code, mine.text[:300])
            assert (mine.status_code, unmasked(mine.text)) == (nobodys.status_code, unmasked(nobodys.text)), where
            assert_shows_nothing_of(world, mine, where)
            if method == "GET":
                assert mine.status_code == 404, where


def unmasked(page: str) -> str:
    """The page with its CSRF token's value left out: Django masks it anew in every
    response (against BREACH), so it differs between any two pages."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', page)


def assert_only_bobs_own_data(bob: Session, world: World, entry: dict) -> None:
    for path in world.paths(entry):
        for method in METHODS:
            response = bob.request(method, path, json=BODY)
            where = f"{method} {path}"
            assert response.status_code in (200, 201, 405), (where, response.status_code, response.text[:300])
            assert_shows_nothing_of(world, response, where)


async def test_every_url_needs_a_login_and_the_admin_needs_staff(entry_points, server, alice, database):
    world = await alices_world(alice, database)
    anonymous = Session(server, None)
    anonymous.http.get("/accounts/login/")  # a CSRF cookie, so that the login check is what answers
    for entry in guarded(entry_points):
        for path in world.paths(entry):
            for method in methods_of(entry):
                response = anonymous.request(method, path, json=BODY, follow_redirects=False)
                where = f"{method} {path}"
                if entry["route"].startswith("api/"):
                    assert response.status_code == 401, (where, response.status_code)
                    assert response.json()["error"] == "not_logged_in", where
                else:
                    login = "/admin/login/" if entry["route"].startswith("admin/") else "/accounts/login/"
                    assert_redirected_to(response, login, where)
                assert_shows_nothing_of(world, response, where)

    create_superuser(database, "root")
    root = Session(server, "root")
    for entry in guarded(entry_points):
        if not entry["route"].startswith("admin/"):
            continue
        for path in world.paths(entry):
            response = root.request("GET", path)
            assert response.status_code < 500, (path, response.text[-2000:])
            if entry["name"] and entry["name"].endswith(("_change", "_history", "_checkpoints", "_export")):
                assert response.status_code == 200, (path, response.status_code)


async def test_every_unsafe_request_needs_the_csrf_token(entry_points, server, alice, database):
    world = await alices_world(alice, database)
    before = database_state(database, world)
    for entry in entry_points["http"]:
        path = world.path(entry)
        for method in methods_of(entry, UNSAFE):
            # A valid session, no token: what a page of another site can make a browser send.
            response = alice.http.request(method, path, json=BODY, headers={"Origin": server.url})
            assert response.status_code == 403, (method, path, response.status_code)
            assert "CSRF verification failed" in response.text, (method, path)
            if entry["route"].startswith("api/"):  # the API answers in JSON, as its own errors
                assert response.json()["error"] == "csrf_failed", (method, path)
    assert database_state(database, world) == before
    assert alice.request("GET", "/api/conversations/").status_code == 200  # still logged in
    unknown = alice.request("GET", "/api/no-such-endpoint/")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")

    api = [entry for entry in entry_points["http"] if entry["route"].startswith("api/")]
    refused_from_elsewhere(alice, world, api)
    answers = with_the_token(alice, world, api)
    assert answers[("POST", "api-conversations")] == 201
    assert answers[("PATCH", "api-conversation")] == 200
    assert answers[("DELETE", "api-conversation")] == 204
    assert database.count("conversations_conversation", "id = %s", (stored_uuid(database, world.conversation),)) == 0

    visitor = Session(server, None)
    visitor.http.get("/accounts/login/")
    form = {"username": "bob", "password": PASSWORD}
    assert visitor.http.post("/accounts/login/", data=form).status_code == 403
    visitor.login("bob")  # the same form with the token: 302, logged in


def refused_from_elsewhere(session: Session, world: World, entries: list[dict]) -> None:
    """The right token is not enough from a foreign Origin."""
    for entry in entries:
        for method in UNSAFE:
            response = session.request(method, world.path(entry), json=BODY, headers={"Origin": "http://evil.example"})
            assert response.status_code == 403, (method, entry["route"])


def with_the_token(session: Session, world: World, entries: list[dict]) -> dict:
    """Each unsafe request with the token, deletions last: none is refused for CSRF."""
    answers = {}
    for method in sorted(UNSAFE, key=lambda m: m == "DELETE"):
        for entry in entries:
            response = session.request(method, world.path(entry), json=BODY)
            assert response.status_code != 403 and response.status_code < 500, (method, entry["route"], response.text)
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


async def test_every_frame_naming_alices_objects_is_not_found_and_changes_nothing(entry_points, server, alice, bob, database):
    world = await alices_world(alice, database)
    ids = {**world.ids, "conversation": world.conversation}
    naming, acting = frames_naming(ids), frames_acting_on_the_socket(ids)
    assert set(naming) | set(acting) == set(entry_points["frames"]), "a new frame type: walk it here"

    async with bob.websocket(world.conversation) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd.code == 4404

    own = bob.create_conversation()["id"]
    async with alice.websocket(world.conversation) as watcher, bob.websocket(own) as ws:
        await receive(watcher)
        await receive(ws)
        await chat(ws, "hello")
        before = (alices_state(database, world), database_state(database, world))
        missing = frames_naming({name: uuid.uuid4().hex for name in ids})
        for kind, frames in naming.items():
            for frame, unknown in zip(frames, missing[kind]):
                await send(ws, frame)
                answer = await receive(ws)
                assert answer["type"] == "error" and answer["code"] == "not_found", (frame, answer)
                await send(ws, unknown)
                assert await receive(ws) == answer, frame  # the same as for an id that exists nowhere
        assert (alices_state(database, world), database_state(database, world)) == before

        for kind, (frame, answer) in acting.items():
            await send(ws, frame)
            assert (await receive(ws))["type"] == answer, kind
        assert (await receive_until(ws, run_ended))[-1]["run"]["status"] == "succeeded"
        assert alices_state(database, world) == before[0]
        # "hello" and "mine", each with its reply: the send landed in bob's conversation.
        assert database.count("conversations_message", "conversation_id = %s", (stored_uuid(database, own),)) == 4

        await send(watcher, {"type": "ping"})
        assert (await receive(watcher))["type"] == "pong"  # alice's socket heard nothing of bob's


FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://evil.example",
    "http://127.0.0.1.evil.example",
    "http://127.0.0.1@evil.example",
    "null",
    "file://",
]


def connect(session: Session, conversation_id: str, origin: str | None, host: str = "127.0.0.1"):
    headers = {"Cookie": session.cookie_header()}
    if origin is not None:
        headers["Origin"] = origin
    return websockets.connect(
        f"ws://{host}:{session.server.port}/ws/conversations/{conversation_id}/", additional_headers=headers, open_timeout=10
    )


async def assert_refused(session: Session, conversation_id: str, origin: str | None) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(session, conversation_id, origin):
            pass
    assert refused.value.response.status_code == 403, origin


async def test_a_websocket_needs_an_allowed_origin_and_a_missing_one_is_refused(server, alice):
    conversation = alice.create_conversation()["id"]
    # No Origin at all is refused too: browsers always send one, and a script can.
    # Another app on this machine (another port), the same app under another of its host
    # names, or another scheme, is another origin, as for Django's CSRF check.
    others = [f"http://127.0.0.1:{server.port + 1}", "http://127.0.0.1", f"http://localhost:{server.port}",
              f"https://127.0.0.1:{server.port}"]
    for origin in [*FOREIGN_ORIGINS, *others, None]:
        await assert_refused(alice, conversation, origin)
    for host in ["127.0.0.1", "localhost"]:
        origin = f"http://{host}:{server.port}"
        async with connect(alice, conversation, origin, host) as ws:
            assert (await receive(ws))["type"] == "snapshot", origin


@pytest.mark.parametrize("backend", ["sqlite"])  # a matter of settings, not of the database
async def test_a_wildcard_host_list_does_not_open_the_websocket_to_every_origin(make_server):
    server = make_server(DJANGO_ALLOWED_HOSTS="*", DJANGO_SECRET_KEY=uuid.uuid4().hex * 2).start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()["id"]
    for origin in [*FOREIGN_ORIGINS, None]:
        await assert_refused(alice, conversation, origin)
    async with connect(alice, conversation, server.url) as ws:
        assert (await receive(ws))["type"] == "snapshot"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_trusted_origin_may_open_the_websocket(make_server):
    """A page served under another name (a proxy's) is let in by DJANGO_CSRF_TRUSTED_ORIGINS,
    wildcards included, as Django's CSRF check lets its POSTs in."""
    server = make_server(DJANGO_CSRF_TRUSTED_ORIGINS="https://chat.example.com,https://*.corp.example").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()["id"]
    for origin in ["https://chat.example.com", "https://team.corp.example"]:
        async with connect(alice, conversation, origin) as ws:
            assert (await receive(ws))["type"] == "snapshot", origin
    for origin in ["https://other.example.com", "http://chat.example.com", "http://team.corp.example"]:
        await assert_refused(alice, conversation, origin)
