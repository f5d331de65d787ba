"""The agent against a model server that speaks OpenAI's streaming protocol in its
strictest form (tests/support/openai_server.py): every request the app sends is checked
for order, pairing and alternation (the server refuses orphan tool calls and
non-alternating roles with 400), and every failure for what the user sees and what is
stored. In-process, through the websocket."""

import contextlib
import io
import json
import logging
import uuid

import pytest
from asgiref.sync import sync_to_async

from agent.models import Task
from agent.prompts import SUMMARY_HEADING
from conversations.models import Message, Run, Summary
from tests.support.in_process import run_ended, run_waiting
from tests.support.openai_server import (
    Call, ContextTooLong, Drop, Error, Hang, OpenAIServer, Stall, Text, ToolCalls, after_tool, any_request,
    last_user, roles,
)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "openai:test-model"
API_KEY = f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def model_server(settings):
    with OpenAIServer(strict=True, api_key=API_KEY) as server:
        settings.CHAT_MODEL = MODEL
        settings.CHAT_MODELS = [MODEL, "offline"]
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = API_KEY
        settings.CHAT_MAX_RETRIES = 0
        yield server


async def open_chat(people):
    alice = await people()
    conversation = await alice.conversation()
    return conversation, await alice.open(conversation.id)


def accepted(server, *, scripted_errors: int = 0) -> list[dict]:
    """The chat requests the server received; none was refused but those it was told to
    answer with an error."""
    refused = [r for r in server.requests if r.path.endswith("/chat/completions") and r.status != 200]
    assert len(refused) == scripted_errors, refused
    return server.chat_requests()


def said(body: dict) -> list[tuple[str, str]]:
    """(role, text) of a request's messages; a tool call as `call:<name>`."""
    out = []
    for message in body["messages"]:
        content = message.get("content") or ""
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        calls = [f"call:{c['function']['name']}" for c in message.get("tool_calls") or []]
        out.append((message["role"], " ".join([text, *calls]).strip()))
    return out


@sync_to_async
def stored(conversation, **filters) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, **filters).order_by("turn_at", "created_at", "id"))


@sync_to_async
def runs_of(conversation) -> list[Run]:
    return list(Run.objects.filter(conversation=conversation).order_by("created_at"))


async def test_a_queued_message_follows_the_whole_turn_ahead_of_it(people, model_server):
    model_server.on(last_user("slow please"), Text("one two three four five six", chunk_size=2, delay=0.1))
    conversation, socket = await open_chat(people)
    await socket.chat("my name is Zed")
    await socket.send({"type": "message.send", "content": "slow please"})
    await socket.receive_until(lambda f: f["type"] == "token")
    await socket.send({"type": "message.send", "content": "what is my name?"})
    await socket.receive_until(lambda f: run_ended(f) and f["run"]["status"] == "succeeded")
    await socket.receive_until(run_ended)

    third = accepted(model_server)[-1]
    assert said(third)[1:] == [
        ("user", "my name is Zed"), ("assistant", "Echo: my name is Zed"),
        ("user", "slow please"), ("assistant", "one two three four five six"),
        ("user", "what is my name?"),
    ]
    assert [m.content for m in await stored(conversation)] == [
        "my name is Zed", "Echo: my name is Zed", "slow please", "one two three four five six",
        "what is my name?", "Echo: what is my name?",
    ]
    await socket.close()


async def test_earlier_tool_calls_and_a_rejection_reach_the_model_paired(people, model_server):
    model_server.on(last_user("write to bob"), ToolCalls([Call("send_email", {"to": "bob@example.com", "subject": "Hi", "body": "Hello"})]))
    model_server.on(after_tool("send_email"), Text("All right, I did not send it."))
    conversation, socket = await open_chat(people)
    await socket.send({"type": "message.send", "content": "write to bob"})
    frames = await socket.receive_until(run_waiting)
    approval = next(f["approval"] for f in frames if f["type"] == "approval")
    # While the e-mail waits for its decision, another message is queued behind it.
    await socket.send({"type": "message.send", "content": "did it go out?"})
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "reject", "comment": "not now"})
    await socket.receive_until(lambda f: run_ended(f) and f["run"]["status"] == "succeeded")
    await socket.receive_until(run_ended)

    last = accepted(model_server)[-1]
    assert said(last)[1:] == [
        ("user", "write to bob"), ("assistant", "call:send_email"), ("tool", "Rejected by the user. not now"),
        ("assistant", "All right, I did not send it."), ("user", "did it go out?"),
    ]
    shown = [(m.role, m.content) for m in await stored(conversation)]
    assert shown[-2:] == [("user", "did it go out?"), ("assistant", "Echo: did it go out?")]
    await socket.close()


async def test_a_failed_turn_is_merged_so_roles_alternate(people, model_server):
    model_server.on(last_user("first"), Error(400, message="Invalid request."))
    conversation, socket = await open_chat(people)
    failed = await socket.chat("first")
    assert failed[-1]["run"]["status"] == "failed"
    assert failed[-1]["run"]["error"] == "The model server refused the request."
    await socket.chat("second")
    assert said(accepted(model_server, scripted_errors=1)[-1])[1:] == [("user", "first\nsecond")]
    await socket.close()


async def test_a_reply_cut_off_by_the_output_limit_runs_no_tool_call(people, model_server, settings):
    settings.CHAT_MAX_OUTPUT_TOKENS = 50
    cut = ToolCalls([Call("create_task", '{"title": "buy mi')], content="Let me", finish_reason="length")
    model_server.on(last_user("make a task"), cut)
    conversation, socket = await open_chat(people)
    frames = await socket.chat("make a task")
    assert frames[-1]["run"]["status"] == "succeeded"
    assert not [f for f in frames if f["type"] in {"tool", "approval"}]
    assert await sync_to_async(Task.objects.count)() == 0
    [reply] = await stored(conversation, role=Message.Role.ASSISTANT)
    assert (reply.content, reply.incomplete, reply.tool_calls) == ("Let me", Message.Incomplete.LENGTH, [])
    assert accepted(model_server)[0]["max_tokens"] == 50

    await socket.chat("and now?")  # the strict server accepts what follows
    assert said(accepted(model_server)[-1])[1:] == [("user", "make a task"), ("assistant", "Let me"), ("user", "and now?")]
    await socket.close()


@pytest.mark.parametrize("bad_call", [
    Call("create_task", '{"title": "unterminated'),
    Call("make_coffee", {"strength": "high"}),
], ids=["arguments-not-json", "unknown-tool"])
async def test_a_bad_tool_call_goes_back_to_the_model_as_an_error(people, model_server, bad_call):
    model_server.on(last_user("do it"), ToolCalls([bad_call]))
    model_server.on(any_request(), Text("Sorry, let me fix that."))
    conversation, socket = await open_chat(people)
    frames = await socket.chat("do it")
    assert frames[-1]["run"]["status"] == "succeeded"
    [failed] = [f for f in frames if f["type"] == "tool"]
    assert failed["status"] == "failed"

    second = accepted(model_server)[1]
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == bad_call.name
    assert tool["role"] == "tool" and tool["content"].startswith("Error: ")
    reply = (await stored(conversation, role=Message.Role.ASSISTANT))[-1]
    assert reply.content == "Sorry, let me fix that."

    await socket.chat("again")  # the call and its error stay paired in the history
    assert [role for role in roles(accepted(model_server)[-1])] == ["system", "user", "assistant", "tool", "assistant", "user"]
    await socket.close()


async def test_a_run_takes_at_most_chat_max_steps_model_steps(people, model_server, settings):
    settings.CHAT_MAX_STEPS = 3
    model_server.on(any_request(), *[ToolCalls([Call("current_time", {})]) for _ in range(10)])
    conversation, socket = await open_chat(people)
    frames = await socket.chat("loop forever")
    assert frames[-1]["run"]["status"] == "failed"
    assert "stopped after 3 model steps" in frames[-1]["run"]["error"]
    assert len(accepted(model_server)) == 3
    await socket.close()


async def test_parallel_and_one_chunk_tool_calls(people, model_server):
    calls = [Call("current_time", {}), Call("create_task", {"title": "water the plants"})]
    model_server.on(last_user("split"), ToolCalls(calls))
    model_server.on(last_user("ollama"), ToolCalls([Call("create_task", {"title": "feed the cat"})], style="ollama"))
    conversation, socket = await open_chat(people)
    first = await socket.chat("split")
    second = await socket.chat("ollama")
    done = [f["name"] for f in first + second if f["type"] == "tool" and f["status"] == "succeeded"]
    assert sorted(done) == ["create_task", "create_task", "current_time"]
    titles = sorted(await sync_to_async(lambda: list(Task.objects.values_list("title", flat=True)))())
    assert titles == ["feed the cat", "water the plants"]
    assert roles(accepted(model_server)[-1])[1:] == [
        "user", "assistant", "tool", "tool", "assistant", "user", "assistant", "tool"]
    await socket.close()


async def test_a_server_that_never_answers_times_out(people, model_server, settings):
    settings.CHAT_TIMEOUT_SECONDS = 0.5
    model_server.on(last_user("hello"), Hang())
    conversation, socket = await open_chat(people)
    frames = await socket.chat("hello")
    assert frames[-1]["run"]["error"] == "The model server did not answer in time."
    await socket.send({"type": "message.send", "content": "still there?"})  # nothing stays blocked
    assert (await socket.receive_until(run_ended))[-1]["run"]["status"] == "succeeded"
    await socket.close()


async def test_a_stream_that_stalls_keeps_what_was_shown_marked_and_fails(people, model_server, settings):
    settings.CHAT_STALL_TIMEOUT_SECONDS = 0.5
    settings.CHAT_MAX_RETRIES = 2
    model_server.on(last_user("tell me"), Stall(Text("It was a dark and stormy night", chunk_size=5), after_chunks=4))
    conversation, socket = await open_chat(people)
    frames = await socket.chat("tell me")
    shown = "".join(f["delta"] for f in frames if f["type"] == "token")
    assert shown == "It was a dark a"  # the role chunk, then three of five characters
    assert frames[-1]["run"]["status"] == "failed"
    assert frames[-1]["run"]["error"] == "The model server did not answer in time."
    [kept] = await stored(conversation, role=Message.Role.ASSISTANT)
    assert (kept.content, kept.incomplete) == (shown, Message.Incomplete.ERROR)
    assert len(accepted(model_server)) == 1  # text was shown: not retried
    await socket.close()


async def test_a_dropped_stream_keeps_its_text_and_the_next_turn_is_whole(people, model_server):
    model_server.on(last_user("story"), Drop(Text("Once upon a time there", chunk_size=5), after_chunks=4))
    conversation, socket = await open_chat(people)
    frames = await socket.chat("story")
    assert frames[-1]["run"]["error"] == "The connection to the model server was lost while it was writing the reply."
    stored_message = next(f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")
    shown = "".join(f["delta"] for f in frames if f["type"] == "token")
    assert stored_message["incomplete"] == "error" and stored_message["content"] == shown == "Once upon a tim"
    await socket.chat("go on")
    assert said(accepted(model_server)[-1])[1:] == [("user", "story"), ("assistant", shown), ("user", "go on")]
    await socket.close()


async def test_retries_honour_retry_after_while_nothing_was_shown(people, model_server, settings):
    settings.CHAT_MAX_RETRIES = 2
    model_server.on(last_user("busy"), Error(429, headers={"Retry-After": "0.3"}), Error(502, html=True), Text("Here."))
    conversation, socket = await open_chat(people)
    frames = await socket.chat("busy")
    assert frames[-1]["run"]["status"] == "succeeded"
    assert len(accepted(model_server, scripted_errors=2)) == 3


async def test_failures_are_told_in_words(people, model_server, settings):
    settings.CHAT_MAX_RETRIES = 1
    settings.CHAT_RETRY_MAX_WAIT_SECONDS = 5
    model_server.on(last_user("a"), Error(500), Error(500))
    model_server.on(last_user("b"), Error(429, headers={"Retry-After": "120"}))
    model_server.on(last_user("c"), ContextTooLong(8192))
    model_server.on(last_user("d"), Error(404))
    alice = await people()
    errors = []
    for text in "abcd":  # a conversation each: failed turns would be merged into the next
        socket = await alice.open((await alice.conversation()).id)
        errors.append((await socket.chat(text))[-1]["run"]["error"])
        await socket.close()
    assert errors == [
        "The model server is unavailable right now. Try again in a moment.",
        "The model server is rate limiting requests right now. Try again in 120 seconds.",
        "The conversation is too long for the model, even with its older turns summarized.",
        "The model server does not know this model. An administrator needs to check the model's name.",
    ]
    assert len(accepted(model_server, scripted_errors=5)) == 5


@contextlib.contextmanager
def server_log():
    """What the app's own log handler (settings.LOGGING, with its filters) writes."""
    import chatproject.asgi  # noqa: F401 (sets Django up, and its logging, before the handler is found)
    from chatproject.logs import RedactSecrets

    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecrets) for f in h.filters))
    written = io.StringIO()
    previous = handler.setStream(written)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        yield written
    finally:
        handler.setStream(previous)
        logging.getLogger().setLevel(level)


async def test_a_gateway_that_echoes_the_key_puts_it_nowhere(people, model_server):
    model_server.on(last_user("hi"), Error(401, message="Invalid key: {authorization}"))
    with server_log() as log:
        conversation, socket = await open_chat(people)
        frames = await socket.chat("hi")
        await socket.close()
    error = frames[-1]["run"]["error"]
    assert error.startswith("The model server refused the app's credentials")
    run = (await runs_of(conversation))[-1]
    assert API_KEY not in (run.error or "") and API_KEY not in json.dumps(frames)
    # The log keeps the provider's text, with the key masked.
    assert "Invalid key: Bearer [redacted]" in log.getvalue() and API_KEY not in log.getvalue()


async def test_reasoning_streams_apart_is_stored_apart_and_never_sent_back(people, model_server):
    model_server.on(last_user("deep"), Text("The answer is 42.", reasoning="Let me think about it.", chunk_size=6))
    model_server.on(last_user("deeper"), Text("Still 42.", reasoning="Same as before.", think_tags=True, chunk_size=3))
    conversation, socket = await open_chat(people)
    for question in ("deep", "deeper"):
        frames = await socket.chat(question)
        thinking = "".join(f["delta"] for f in frames if f["type"] == "token" and f.get("part") == "reasoning")
        answer = "".join(f["delta"] for f in frames if f["type"] == "token" and "part" not in f)
        assert (thinking, answer) in {("Let me think about it.", "The answer is 42."), ("Same as before.", "Still 42.")}
    replies = await stored(conversation, role=Message.Role.ASSISTANT)
    assert [(m.content, m.reasoning) for m in replies] == [
        ("The answer is 42.", "Let me think about it."), ("Still 42.", "Same as before.")]
    await socket.chat("and?")
    sent = json.dumps(accepted(model_server)[-1]["messages"])
    assert "42" in sent and "think" not in sent and "Same as before" not in sent
    await socket.close()


async def test_usage_is_requested_and_recorded_per_reply_and_run(people, model_server):
    model_server.on(last_user("count"), ToolCalls([Call("current_time", {})], usage={"prompt_tokens": 100, "completion_tokens": 7}))
    model_server.on(after_tool("current_time"), Text("Noon.", reasoning="hm", usage={
        "prompt_tokens": 120, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 4}}))
    conversation, socket = await open_chat(people)
    frames = await socket.chat("count")
    assert all(body["stream_options"] == {"include_usage": True} for body in accepted(model_server))
    ended = frames[-1]["run"]
    assert ended["usage"] == {"input_tokens": 220, "output_tokens": 16, "reasoning_tokens": 4}
    assert ended["model"] == MODEL
    [run] = await runs_of(conversation)
    assert (run.input_tokens, run.output_tokens, run.reasoning_tokens, run.model) == (220, 16, 4, MODEL)
    await socket.close()


async def test_each_conversation_answers_with_its_chosen_model(people, model_server):
    alice = await people()
    offline = await alice.conversation(model="offline")
    default = await alice.conversation()
    for conversation, expected in [(offline, 'You said: "hi"'), (default, "Echo: hi")]:
        socket = await alice.open(conversation.id)
        assert socket.snapshot["conversation"]["model"] == (conversation.model or MODEL)
        frames = await socket.chat("hi")
        assert frames[-2]["message"]["content"] == expected
        assert frames[-1]["run"]["model"] == (conversation.model or MODEL)
        await socket.close()
    assert len(accepted(model_server)) == 1


async def test_a_long_conversation_is_summarized_by_the_model_and_keeps_working(people, model_server, settings):
    settings.CHAT_CONTEXT_TOKENS = 1500
    settings.CHAT_MAX_OUTPUT_TOKENS = settings.CHAT_REPLY_ROOM_TOKENS = 100
    summary_prompt = "Summarize a conversation"
    model_server.on(lambda body: body["messages"][0]["content"].startswith(summary_prompt),
                    *[Text(f"Summary number {i}.") for i in range(1, 20)])
    conversation, socket = await open_chat(people)
    for index in range(25):
        frames = await socket.chat(f"fact {index}: " + "blah " * 30)
        assert frames[-1]["run"]["status"] == "succeeded"
    requests = accepted(model_server)
    summaries = [r for r in requests if r["messages"][0]["content"].startswith(summary_prompt)]
    assert summaries and "Previous summary" in summaries[-1]["messages"][1]["content"]
    last = requests[-1]
    system = last["messages"][0]["content"]
    assert SUMMARY_HEADING in system and f"Summary number {len(summaries)}." in system
    # Whole turns after the summary: user first, each with its reply, the current one last.
    assert roles(last)[1] == "user" and roles(last)[-1] == "user"
    summary = await sync_to_async(Summary.objects.latest)("through_turn_at")
    assert summary.content == f"Summary number {len(summaries)}." and summary.model == MODEL
    await socket.close()


async def test_retry_answers_a_failed_last_turn_again(people, model_server):
    model_server.on(last_user("flaky"), Error(503), Text("Fine now."))
    conversation, socket = await open_chat(people)
    failed = await socket.chat("flaky")
    run_id = failed[-1]["run"]["id"]
    await socket.send({"type": "run.retry", "run_id": run_id})
    frames = await socket.receive_until(run_ended)
    assert frames[0]["type"] == "snapshot"
    assert frames[-1]["run"]["status"] == "succeeded"
    assert [(m.role, m.content) for m in await stored(conversation)] == [("user", "flaky"), ("assistant", "Fine now.")]
    await socket.send({"type": "run.retry", "run_id": run_id})
    assert (await socket.receive())["code"] == "bad_request"  # that turn was answered since
    await socket.close()


async def test_an_approved_tool_beside_one_that_ran_at_once_is_reported_once(people, model_server):
    calls = [Call("create_task", {"title": "call mum"}), Call("send_email", {"to": "a@b.co", "subject": "S", "body": "B"})]
    model_server.on(last_user("both"), ToolCalls(calls))
    conversation, socket = await open_chat(people)
    await socket.send({"type": "message.send", "content": "both"})
    frames = await socket.receive_until(run_waiting)
    approval = next(f["approval"] for f in frames if f["type"] == "approval")
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
    frames += await socket.receive_until(run_ended)
    reported = [(f["name"], f["status"]) for f in frames if f["type"] == "tool"]
    assert sorted(reported) == sorted([("create_task", "started"), ("create_task", "succeeded"),
                                       ("send_email", "started"), ("send_email", "succeeded")])
    assert len(await stored(conversation, role=Message.Role.TOOL)) == 2
    await socket.close()


async def test_no_message_contents_or_tool_arguments_in_the_log_at_info(people, model_server, settings):
    """A tool that fails with its arguments in the error's text (Django's mail refuses a
    subject with a line break and quotes it) leaves the text out of the log at INFO and
    above; the frames stay, with the exception's type."""
    settings.TOOLS_REQUIRING_APPROVAL = []
    subject = f"planted-subject-{uuid.uuid4().hex}\nX"
    model_server.on(last_user("mail it"), ToolCalls([Call("send_email", {"to": "a@b.co", "subject": subject, "body": "b"})]))
    with server_log() as log:
        logging.getLogger().setLevel(logging.INFO)
        conversation, socket = await open_chat(people)
        frames = await socket.chat("mail it")
        await socket.close()
    [failed] = [f for f in frames if f["type"] == "tool" and f["status"] == "failed"]
    assert "BadHeaderError" in failed["result"]
    written = log.getvalue()
    assert "tool send_email failed" in written and "BadHeaderError" in written
    assert "planted-subject" not in written and "mail it" not in written
