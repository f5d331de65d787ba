"""Generated bad input (hypothesis): websocket frames and the JSON API.

Every input gets a well-formed answer, the socket and the app stay up, and the database
stays consistent. In-process: one agent runtime per test serves every example, the
socket through channels' communicator, the API through Django's client. What only the
server shows (a text frame that is not UTF-8 fails the connection) runs against daphne.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote, quote_from_bytes

import hypothesis
import pytest
from django.db import connection
from hypothesis import HealthCheck, Phase, given, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conversations.consumers import ConversationConsumer
from conversations.validation import unstorable
from tests.support.in_process import (
    TIMEOUT,
    Browser,
    Person,
    browser,
    clear_checkpoint_tables,
    sql_rows,
)

# derandomize: the same examples on every run, so CI is repeatable; database=None: no
# example store left behind to change the next run. No shrinking: every example changes
# the app's state, so a smaller one would not fail alike; the failing input is reported
# as drawn.
FUZZ = hypothesis.settings(
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
FRAME_LIMIT = 64 * 1024
ERROR_CODES = {"bad_request", "too_large", "rate_limited", "not_found", "conflict"}
EVENT_TYPES = {"message", "token", "tool", "approval", "run"}
FRAME_TYPES = sorted(ConversationConsumer.HANDLERS)


# The app's tasks (on the test's loop, in another thread than hypothesis's) use the
# `random` module while hypothesis draws an example, which it takes for a strategy's use.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")


@pytest.fixture
def fast_runs(agent_runtime, settings):
    """Replies without pauses, so that the runs of valid messages end between examples; and
    rate limits far above what the fuzzing sends, so that valid frames take effect
    (rate_limited is still a well-formed answer). The offline model reads its pause when
    a loop first uses it, after agent_runtime set its own."""
    settings.OFFLINE_MODEL_DELAY_MS = 0
    settings.RATE_LIMIT_MESSAGES = settings.RATE_LIMIT_DECISIONS = (100_000, 60.0)


@pytest.fixture
async def on_loop(fast_runs):
    """Hypothesis calls each example synchronously, so the test runs it in a thread of its
    own: this runs a coroutine from there on the test's event loop, where the app's
    runtime and sockets live, and gives its result. Checkpoints of earlier tests'
    threads are cleared first, as the consistency check reads every thread."""
    await clear_checkpoint_tables()
    loop = asyncio.get_running_loop()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=2 * TIMEOUT)

    return run


# ---------------------------------------------------------------- generated values


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """one_of with weights (one_of draws each branch alike)."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


# NUL and lone surrogates are valid in JSON text and stored by no database (PostgreSQL
# refuses NUL, no UTF-8 encoder takes a lone surrogate); the others are merely unusual.
ODD = st.sampled_from(["\x00", "\ud800", "\udfff", "\udc00\ud800", "\u2028", "\ufeff", "\U0001f600", "\x1b[0m", "\r\n"])
TEXT = weighted(
    (4, st.text(max_size=40)),
    (1, st.builds(lambda a, odd, b: a + odd + b, st.text(max_size=8), ODD, st.text(max_size=8))),
)
# What a websocket text frame can carry as is: no lone surrogates.
RAW_TEXT = st.text(st.characters() | st.sampled_from("\x00{}[]\":,"), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
RANDOM_IDS = st.uuids().map(str) | TEXT | st.integers() | JSON_VALUES
# Contents the offline model acts on (tools, an approval, an echo), lengths around the limit.
CONTENTS = weighted(
    (2, st.sampled_from(["hello", "email bob@example.com Lunch: at noon", "task buy milk", "time", "recall"])),
    (2, TEXT),
    (1, st.integers(31_990, 32_010).map(lambda n: "y" * n)),
)


@dataclass(frozen=True)
class Known:
    """The index-th id of one kind (message, branch, run, approval, conversation) that
    the server made, filled in when sent: hypothesis must draw alike whatever it made."""

    kind: str
    index: int

    def pick(self, ids: list[str]) -> str:
        return ids[self.index % len(ids)] if ids else str(uuid.UUID(int=self.index))


def ids(kind: str):
    """Ids of real objects of this kind, and random ones."""
    return weighted((4, st.integers(0, 1000).map(lambda index: Known(kind, index))), (1, RANDOM_IDS))


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly values of the right type, now and then any JSON value. (Hypothesis seeks
    new choices: it draws rich strategies more often than their weight says.)"""
    return weighted((5, valid), (1, JSON_VALUES))


FIELDS = {
    "content": mostly(CONTENTS),
    "client_id": mostly(st.text(min_size=1, max_size=4) | st.text(min_size=60, max_size=70)),
    "message_id": mostly(ids("message")),
    "branch_id": mostly(ids("branch")),
    "run_id": mostly(ids("run")),
    "approval_id": mostly(ids("approval")),
    "decision": mostly(st.sampled_from(["approve", "reject", "edit"]) | TEXT),
    "args": mostly(st.fixed_dictionaries({}, optional={"to": TEXT, "subject": TEXT, "body": TEXT})),
    "comment": mostly(TEXT | st.text(min_size=1990, max_size=2010)),
}
# The frames that, accepted, make a run.
MAKES_A_RUN = ("message.send", "message.edit", "message.regenerate", "run.retry")
# Each type's fields (docs/protocol.md), in the sets a valid frame may have.
TYPE_FIELDS = {
    "message.send": [["content"], ["content", "client_id"]],
    "message.edit": [["message_id", "content"], ["message_id", "content", "client_id"]],
    "message.regenerate": [["message_id"], ["message_id", "client_id"]],
    "branch.switch": [["message_id"], ["branch_id"]],
    "run.cancel": [[], ["run_id"]],
    "run.retry": [["run_id"], ["run_id", "client_id"]],
    "approval.decide": [["approval_id", "decision"], ["approval_id", "decision", "args", "comment"]],
    "ping": [[]],
}
assert set(TYPE_FIELDS) == set(FRAME_TYPES), "a frame type without fuzzed fields"


def typed_frames():
    """Objects of every known type: mostly its own fields, of the right type or not; now
    and then any fields, its own or others', or none."""

    def of_type(kind: str):
        own = st.sampled_from(TYPE_FIELDS[kind]).flatmap(
            lambda names: st.fixed_dictionaries({"type": st.just(kind), **{name: FIELDS[name] for name in names}})
        )
        return weighted((5, own), (1, st.fixed_dictionaries({"type": st.just(kind)}, optional=FIELDS)))

    return st.sampled_from(FRAME_TYPES).flatmap(of_type)


def nested(depth: int) -> str:
    # Depths stay clear of the parser's recursion limit (about 1000), which differs
    # slightly between this process and the server.
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Raw:
    """One websocket frame as sent: text (str) or binary (bytes)."""

    payload: str | bytes
    text: bool = True


@dataclass(frozen=True)
class JsonFrame:
    """A JSON value to send as text (raw UTF-8 or \\u-escaped) or as a binary frame."""

    value: object
    ascii_only: bool
    binary: bool

    def raw(self, known: dict[str, list[str]]) -> Raw:
        text = json_text(fill(self.value, known), self.ascii_only)
        return Raw(text.encode(), text=False) if self.binary else Raw(text)


def json_text(value, ascii_only: bool) -> str:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text):
        return json.dumps(value)  # lone surrogates go escaped: UTF-8 cannot carry them
    return text


def fill(value, known: dict[str, list[str]]):
    if isinstance(value, Known):
        return value.pick(known[value.kind])
    if isinstance(value, dict):
        return {key: fill(item, known) for key, item in value.items()}
    return value


def frames():
    """Mostly typed frames; then anything else a client could send."""
    typed = typed_frames()
    unknown_types = st.fixed_dictionaries({"type": TEXT.filter(lambda t: t not in FRAME_TYPES)}, optional={"content": TEXT})
    padded = st.builds(lambda f, n: {**f, "padding": "x" * n}, typed, st.integers(FRAME_LIMIT - 200, 3 * FRAME_LIMIT))
    depths = st.integers(1, 500) | st.integers(5_000, 30_000)
    return weighted(
        (12, st.builds(JsonFrame, typed, ascii_only=st.booleans(), binary=st.just(False))),
        (1, st.builds(JsonFrame, unknown_types | JSON_VALUES | padded, ascii_only=st.booleans(), binary=st.booleans())),
        (1, RAW_TEXT.map(Raw)),  # mostly not JSON
        (1, st.binary(max_size=64).map(lambda data: Raw(data, text=False))),
        (1, depths.map(lambda d: Raw(nested(d)))),
        (1, st.builds(lambda kind, d: Raw(f'{{"type": "{kind}", "x": {nested(d)}}}'), st.sampled_from(FRAME_TYPES), depths)),
    )


# ---------------------------------------------------------------- what the server must answer


def content_codes(content) -> set[str]:
    if not isinstance(content, str) or not content.strip():
        return {"bad_request"}
    return {"too_large"} if len(content) > 32_000 else set()


def client_id_codes(client_id) -> set[str]:
    valid = client_id is None or (isinstance(client_id, str) and 0 < len(client_id) <= 64)
    return set() if valid else {"bad_request"}


def id_codes(value) -> set[str]:
    return set() if isinstance(value, str) and value else {"bad_request"}


@dataclass
class Model:
    """What the fuzzed conversation holds, from the frames the server accepted."""

    known: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # ids by kind
    client_ids: set[str] = field(default_factory=set)
    user_messages: int = 0
    runs: int = 0

    def learn(self, frame: dict) -> None:
        """Note the ids of the objects a frame from the server shows."""
        shown = [(kind, frame[kind]) for kind in ("message", "run", "approval") if isinstance(frame.get(kind), dict)]
        if frame["type"] == "snapshot":
            shown += [("message", m) for m in frame["messages"]] + [("approval", a) for a in frame["approvals"]]
            shown += [("branch", {"id": frame["branch_id"]})]
        for kind, data in shown:
            self.remember(kind, data["id"])
            if data.get("branch_id"):
                self.remember("branch", data["branch_id"])

    def remember(self, kind: str, id_: str | None) -> None:
        if id_ and id_ not in self.known[kind]:
            self.known[kind].append(id_)

    def made_by_server(self, value) -> bool:
        return any(value in ids for ids in self.known.values())

    def accept(self, frame: dict) -> None:
        """A send, edit, regenerate or retry the server accepted: what it stored."""
        client_id = frame.get("client_id")
        if client_id in self.client_ids:
            return
        if client_id:
            self.client_ids.add(client_id)
        self.runs += 1
        self.user_messages += frame["type"] in ("message.send", "message.edit")

    def outcomes(self, frame: dict) -> set[str]:
        """The answers allowed: error codes, "pong", or "accepted" (no direct answer)."""
        kind = frame["type"]
        if kind == "ping":
            return {"pong"}
        real = self.made_by_server
        # A client_id seen before: the server answers with what it stored then, whatever the frame.
        client_id = frame.get("client_id")
        seen = {"accepted"} if isinstance(client_id, str) and client_id in self.client_ids else set()
        if kind == "message.send":
            invalid = content_codes(frame.get("content")) | client_id_codes(frame.get("client_id"))
            return invalid or {"accepted", "conflict", "rate_limited"}
        if kind in ("message.edit", "message.regenerate"):
            message_id = frame.get("message_id")
            content = content_codes(frame.get("content")) if kind == "message.edit" else set()
            invalid = id_codes(message_id) | content | client_id_codes(frame.get("client_id"))
            forked = {"accepted", "bad_request"} if real(message_id) else set()
            return invalid or {"not_found", "conflict", "rate_limited"} | forked | seen
        if kind == "branch.switch":
            message_id, branch_id = frame.get("message_id"), frame.get("branch_id")
            if (message_id is None) == (branch_id is None):
                return {"bad_request"}
            chosen = message_id if message_id is not None else branch_id
            return id_codes(chosen) or {"not_found", "conflict"} | ({"accepted"} if real(chosen) else set())
        if kind == "run.cancel":
            run_id = frame.get("run_id")
            if run_id is None or real(run_id):
                return {"accepted", "conflict", "not_found"}
            return {"not_found"}
        if kind == "run.retry":
            run_id = frame.get("run_id")
            invalid = id_codes(run_id) | client_id_codes(frame.get("client_id"))
            retried = {"accepted", "bad_request"} if real(run_id) else set()
            return invalid or {"not_found", "conflict", "rate_limited"} | retried | seen
        if kind == "approval.decide":
            approval_id = frame.get("approval_id")
            decided = {"accepted", "bad_request", "conflict"} if real(approval_id) else set()
            return id_codes(approval_id) or {"not_found", "rate_limited"} | decided
        raise AssertionError(f"no expectation for {kind}")

    def expected(self, raw: Raw) -> set[str]:
        if len(raw.payload.encode() if isinstance(raw.payload, str) else raw.payload) > FRAME_LIMIT:
            return {"too_large"}
        if not raw.text:
            return {"bad_request"}
        try:
            frame = json.loads(raw.payload)
        except (ValueError, RecursionError):
            return {"bad_request"}
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or frame["type"] not in FRAME_TYPES:
            return {"bad_request"}
        if unstorable(frame):
            return {"bad_request"} | self.outcomes(frame) - {"accepted"}  # refused, and never stored
        return self.outcomes(frame)


# ---------------------------------------------------------------- the websocket


def assert_well_formed(frame) -> None:
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    if frame["type"] == "error":
        assert frame["code"] in ERROR_CODES and isinstance(frame["message"], str) and frame["message"], frame
    if frame["type"] in EVENT_TYPES:
        assert isinstance(frame.get("seq"), int), frame


class Socket:
    """Alice's websocket to one conversation, driven from hypothesis's thread through
    `run` (the on_loop fixture); every frame it receives is checked and learnt."""

    def __init__(self, alice: Person, conversation_id, model: Model, run):
        self.alice, self.conversation_id, self.model, self.run = alice, conversation_id, model, run
        self.open()

    def open(self) -> None:
        self.in_step = False  # between sending a frame and reading its last answer
        self.socket = self.run(self.alice.open(self.conversation_id))
        assert self.checked(self.socket.snapshot)["type"] == "snapshot"

    def close(self) -> None:
        # A receive that timed out has cancelled the app already: nothing to close.
        if not self.socket.communicator.future.done():
            self.run(self.socket.close())

    def recover(self) -> None:
        """A failed example may leave the socket closed, or answers unread: start afresh."""
        if self.in_step:
            self.close()
            self.open()

    def checked(self, frame: dict) -> dict:
        assert_well_formed(frame)
        self.model.learn(frame)
        return frame

    def receive(self) -> dict:
        return self.checked(self.run(self.socket.receive()))

    def send(self, raw: Raw) -> None:
        """The frame as a server passes it to the app (channels' send_to refuses an empty one)."""
        frame = {"type": "websocket.receive", "text" if raw.text else "bytes": raw.payload}
        self.run(self.socket.communicator.send_input(frame))

    def answer(self, raw: Raw, *, ping: bool = False) -> str:
        """Send the frame, then a ping: the frame's direct answer (an error code, or "pong"
        if it is a ping), or "accepted" when the ping's pong comes first. The app
        handles a socket's frames in order."""
        self.in_step = True
        self.send(raw)
        self.send(Raw('{"type": "ping"}'))
        answers = []
        while not answers or answers[-1] != "pong" or (ping and answers == ["pong"]):
            frame = self.receive()
            if frame["type"] in ("error", "pong"):
                answers.append(frame.get("code", "pong"))
        assert len(answers) <= 2, f"more than one answer: {answers}"
        self.in_step = False
        return answers[0] if len(answers) == 2 else "accepted"


ACTIVE = "status IN ('queued', 'running', 'waiting')"


async def count(table: str, where: str = "") -> int:
    return (await sql_rows(f"SELECT COUNT(*) FROM {table} {'WHERE ' + where if where else ''}"))[0][0]


def settle(socket: Socket, run, timeout: float = 30) -> None:
    """Stop every active run (a waiting one waits for ever) and let each one end."""
    deadline = time.monotonic() + timeout
    while run(count("conversations_run", ACTIVE)):
        assert time.monotonic() < deadline, "runs did not end"
        socket.answer(Raw('{"type": "run.cancel"}'))
        time.sleep(0.05)


async def assert_app_is_up(person: Person) -> None:
    response = await (await browser(person)).request("GET", "/healthz")
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
async def test_fuzzed_frames_get_answers_and_leave_the_conversation_consistent(people, on_loop):
    alice = await people("alice")
    conversation = await alice.conversation()
    model = Model()

    def fuzz() -> None:
        socket = Socket(alice, conversation.id, model, on_loop)

        @hypothesis.settings(FUZZ, max_examples=400)
        @given(data=st.data())
        def frame_is_answered(data):
            # Drawn first: if recovering fails, hypothesis reports that error, not an
            # example that drew less the second time (FlakyStrategyDefinition).
            drawn = data.draw(frames(), label="frame")
            socket.recover()  # a failed example must not fail the next ones
            raw = drawn.raw(model.known) if isinstance(drawn, JsonFrame) else drawn
            expected = model.expected(raw)
            outcome = socket.answer(raw, ping="pong" in expected)
            assert outcome in expected, (raw, outcome, expected)
            if outcome == "accepted" and (frame := json.loads(raw.payload))["type"] in MAKES_A_RUN:
                model.accept(frame)

        frame_is_answered()
        assert socket.answer(Raw('{"type": "ping"}'), ping=True) == "pong"
        settle(socket, on_loop)
        socket.close()

    await asyncio.to_thread(fuzz)
    await assert_app_is_up(alice)
    await assert_consistent()
    assert await count("conversations_message", "role = 'user'") == model.user_messages
    assert await count("conversations_run") == model.runs


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the websocket's framing is daphne's
def test_a_text_frame_that_is_not_utf8_fails_the_connection(server, alice):
    conversation = alice.create_conversation()["id"]

    def connected():
        return connect(
            f"{server.ws_url}/ws/conversations/{conversation}/",
            additional_headers={"Origin": server.url, "Cookie": alice.cookie_header()},
            open_timeout=10,
            close_timeout=1,
        )

    @hypothesis.settings(FUZZ, max_examples=20)
    @given(st.binary(min_size=1, max_size=16))
    def connection_fails(data):
        with connected() as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
            ws.send(b"\xff" + data, text=True)
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=10)
            # The server fails the connection (RFC 6455): daphne drops it (1006) rather than send 1007.
            assert ws.close_code in (1006, 1007)

    connection_fails()
    with connected() as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        ws.send('{"type": "ping"}')
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    assert server.process.poll() is None


# ---------------------------------------------------------------- the database


async def assert_consistent() -> None:
    """No row points across conversations, no run is stuck, no checkpoint is orphaned."""
    broken = {
        "run started by a message of another conversation or none": """
            SELECT r.id FROM conversations_run r LEFT JOIN conversations_message m ON m.id = r.user_message_id
            WHERE m.id IS NULL OR m.conversation_id != r.conversation_id""",
        "message of a run of another conversation": """
            SELECT m.id FROM conversations_message m JOIN conversations_run r ON r.id = m.run_id
            WHERE r.conversation_id != m.conversation_id""",
        "user message that started no run": """
            SELECT m.id FROM conversations_message m WHERE m.role = 'user'
            AND NOT EXISTS (SELECT 1 FROM conversations_run r WHERE r.user_message_id = m.id)""",
        "message or run on a branch of another conversation": """
            SELECT m.id FROM conversations_message m JOIN conversations_branch b ON b.id = m.branch_id
            WHERE b.conversation_id != m.conversation_id
            UNION ALL SELECT r.id FROM conversations_run r JOIN conversations_branch b ON b.id = r.branch_id
            WHERE b.conversation_id != r.conversation_id""",
        "conversation showing a branch of another one": """
            SELECT c.id FROM conversations_conversation c JOIN conversations_branch b ON b.id = c.current_branch_id
            WHERE b.conversation_id != c.id""",
        "approval of a run of another conversation": """
            SELECT a.id FROM conversations_approval a JOIN conversations_run r ON r.id = a.run_id
            WHERE r.conversation_id != a.conversation_id""",
        "pending approval of a run that is not waiting": """
            SELECT a.id FROM conversations_approval a JOIN conversations_run r ON r.id = a.run_id
            WHERE a.status = 'pending' AND r.status != 'waiting'""",
        "active run with no live lease (a dead owner)": f"""
            SELECT id FROM conversations_run WHERE status IN ('queued', 'running')
            AND (lease_expires_at IS NULL OR lease_expires_at < {database_now()})""",
    }
    for problem, sql in broken.items():
        assert await sql_rows(sql) == [], problem
    conversations = {uuid.UUID(str(row[0])) for row in await sql_rows("SELECT id FROM conversations_conversation")}
    threads = {uuid.UUID(row[0]) for row in await sql_rows("SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads <= conversations, "checkpoints of a conversation that is gone"


def database_now() -> str:
    # Leases are renewed every few seconds; one that expired a while ago has no owner.
    if connection.vendor == "sqlite":
        return "datetime('now', '-30 seconds')"
    return "now() - interval '30 seconds'"


# ---------------------------------------------------------------- the JSON API

# Each endpoint with how often to draw it, its methods and its query parameters
# (docs/protocol.md); "{id}" is a conversation id.
ROUTES = {
    "/api/conversations/": (3, ["GET", "POST"], ["q", "cursor"]),
    "/api/conversations/{id}/": (2, ["GET", "PATCH", "DELETE"], []),
    "/api/conversations/{id}/messages/": (1, ["GET"], []),
    "/api/conversations/{id}/export": (1, ["GET"], ["format"]),
    "/api/approvals/": (1, ["GET"], ["status"]),
    "/api/tasks/": (1, ["GET"], []),
}
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain",
    *FORM_TYPES,
    "multipart/form-data; boundary=fuzz",
    "application/json; charset=latin-1",
]


def cursors():
    """Random text, and base64 of JSON shaped like a real cursor ([time, id]) with any values."""
    times = st.datetimes(timezones=st.none() | st.timezones()).map(lambda time: time.isoformat())
    shaped = st.tuples(weighted((3, times), (1, JSON_VALUES)), st.uuids().map(str) | JSON_VALUES).map(list)
    encoded = weighted((3, shaped), (1, JSON_VALUES)).map(lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()))
    return weighted((3, encoded.map(bytes.decode)), (1, TEXT))


QUERY_VALUES = {
    "cursor": cursors(),
    "format": st.sampled_from(["json", "markdown", "html", ""]) | TEXT,
    "status": st.sampled_from(["pending", "all", "approved", "rejected", "edited", ""]) | TEXT,
}


def query_value(key: str):
    text = QUERY_VALUES.get(key, TEXT).map(lambda value: value.encode("utf-8", "surrogatepass"))
    return text | st.binary(max_size=16)  # percent-encoded bytes that need not be UTF-8


def queries(keys: list[str]):
    """Each of the endpoint's own parameters or not, and now and then another's."""
    own = st.fixed_dictionaries({}, optional={key: query_value(key) for key in keys}).map(dict.items)
    other = st.lists(st.tuples(st.sampled_from(["q", "format", "x"]), query_value("q")), max_size=1)
    params = st.builds(lambda own, other: [*own, *other], own, other)
    return params.map(lambda pairs: "&".join(f"{key}={quote_from_bytes(value)}" for key, value in pairs))


def bodies():
    titles = st.fixed_dictionaries({"title": TEXT | JSON_VALUES | st.integers(190, 210).map(lambda n: "t" * n)})
    json_bodies = st.builds(json_text, weighted((3, titles), (1, JSON_VALUES)), st.booleans()).map(str.encode)
    # Just past the API's limit, and past Django's own (DATA_UPLOAD_MAX_MEMORY_SIZE).
    huge = st.sampled_from([64 * 1024, 2_621_440]).map(lambda n: b'{"title": "' + b"x" * n + b'"}')
    nested = st.integers(1, 40_000).map(lambda depth: b'{"title": ' + b"[" * depth + b"]" * depth + b"}")
    form = st.just(b'--fuzz\r\nContent-Disposition: form-data; name="title"\r\n\r\nform\r\n--fuzz--\r\n')
    return weighted((2, st.none()), (5, json_bodies), (1, st.binary(max_size=64)), (1, huge), (1, nested), (1, form))


@dataclass(frozen=True)
class Request:
    method: str
    endpoint: str
    target: str | Known  # the conversation id, for an endpoint with "{id}"
    query: str
    body: bytes | None
    content_type: str | None

    def conversation_id(self, pool: list[str]) -> str | None:
        if "{id}" not in self.endpoint:
            return None
        return self.target.pick(pool) if isinstance(self.target, Known) else self.target

    async def send(self, person: Browser, pool: list[str]):
        """The request with the person's CSRF token and the app's own Origin, as a page of
        the app sends it. Django's client sends a Content-Type with every body: an empty
        one stands for none."""
        target = self.conversation_id(pool)
        # A lone surrogate goes as the bytes UTF-8 would give it: not UTF-8 at all.
        path = self.endpoint.format(id=quote(target.encode("utf-8", "surrogatepass"), safe="")) if target else self.endpoint
        url = f"{path}?{self.query}" if self.query else path
        headers = {"X-CSRFToken": person.client.cookies["csrftoken"].value, "Origin": Browser.ORIGIN}
        return await person.client.generic(
            self.method, url, self.body or b"", content_type=self.content_type or "", headers=headers
        )


# "/" (and "." or "..") would make another URL, not an id of this endpoint.
PATH_IDS = weighted(
    (3, st.integers(0, 1000).map(lambda index: Known("conversation", index))),
    (1, st.uuids().map(str) | st.integers().map(str) | TEXT.filter(lambda t: "/" not in t and t.strip(".") != "")),
)


def requests_to(endpoint: str):
    _, methods, keys = ROUTES[endpoint]
    return st.builds(
        Request,
        method=weighted((3, st.sampled_from(methods)), (1, st.sampled_from(METHODS))),
        endpoint=st.just(endpoint),
        target=PATH_IDS,
        query=queries(keys),
        body=bodies(),
        content_type=st.sampled_from(CONTENT_TYPES),
    )


def assert_well_formed_response(response) -> None:
    """Every error is the API's JSON, even one met before a view runs (a CSRF failure, a
    form Django cannot parse)."""
    assert response.status_code < 500, response.content[:2000]
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


def seed(alice: Person, conversation_id: str, run) -> None:
    """Messages, a task and a pending approval, for the endpoints to read and export."""
    socket = Socket(alice, conversation_id, Model(), run)
    for content in ["hello *world* \u2028 \U0001f600", "task buy milk", "email bob@example.com Lunch: at noon"]:
        assert socket.answer(Raw(json.dumps({"type": "message.send", "content": content}))) == "accepted"
    deadline = time.monotonic() + 30
    while run(count("conversations_run", "status IN ('queued', 'running')")):
        assert time.monotonic() < deadline, "the seeded runs did not end"
        time.sleep(0.05)
    socket.close()


@pytest.mark.django_db(transaction=True)
async def test_fuzzed_api_requests_never_fail_and_leave_the_database_consistent(people, on_loop):
    alice, bob = await people("alice"), await people("bob")
    alices_browser, bobs_browser = await browser(alice), await browser(bob)
    bobs = (await bobs_browser.create_conversation("bob's"))["id"]
    pool = [(await alices_browser.create_conversation(f"alice {n}"))["id"] for n in range(3)] + [bobs]
    alive = set(pool) - {bobs}

    def request_is_answered(request: Request):
        target = request.conversation_id(pool)
        response = on_loop(request.send(alices_browser, pool))
        assert_well_formed_response(response)
        if target == bobs:
            assert response.status_code in (404, 405), "another user's conversation is 404"
        if response.status_code == 201:
            pool.append(response.json()["id"])
            alive.add(pool[-1])
        if response.status_code == 204:
            alive.discard(target)

    def fuzz() -> None:
        seed(alice, pool[0], on_loop)
        # Endpoint by endpoint, so that each gets its share of the examples.
        for endpoint, (weight, _, _) in ROUTES.items():
            examples = hypothesis.settings(FUZZ, max_examples=30 * weight)
            examples(given(requests_to(endpoint))(request_is_answered))()

    await asyncio.to_thread(fuzz)
    await assert_app_is_up(alice)
    await assert_consistent()
    assert (await bobs_browser.request("GET", f"/api/conversations/{bobs}/")).status_code == 200
    alices = await sql_rows(
        "SELECT c.id FROM conversations_conversation c JOIN auth_user u ON u.id = c.user_id WHERE u.username = 'alice'"
    )
    assert {uuid.UUID(str(row[0])) for row in alices} == {uuid.UUID(i) for i in alive}
