"""What tests send: a message the offline model answers with a call to send_email, and
every kind of bad frame with the error code it gets."""

import json

EMAIL = "email bob@example.com Lunch: see you at noon"

# (name, the raw frame, the error code it gets)
BAD_FRAMES = [
    ("not json", "{", "bad_request"),
    ("not an object", "[1, 2]", "bad_request"),
    ("no type", json.dumps({"content": "hi"}), "bad_request"),
    ("type not a string", json.dumps({"type": 7}), "bad_request"),
    ("unknown type", json.dumps({"type": "conversation.drop"}), "bad_request"),
    ("content missing", json.dumps({"type": "message.send"}), "bad_request"),
    ("content empty", json.dumps({"type": "message.send", "content": "   "}), "bad_request"),
    ("content not a string", json.dumps({"type": "message.send", "content": ["x"]}), "bad_request"),
    ("content too long", json.dumps({"type": "message.send", "content": "x" * 32_001}), "too_large"),
    ("client_id too long", json.dumps({"type": "message.send", "content": "hi", "client_id": "c" * 65}), "bad_request"),
    ("client_id not a string", json.dumps({"type": "message.send", "content": "hi", "client_id": 5}), "bad_request"),
    ("frame over 64 KiB", json.dumps({"type": "message.send", "content": "é" * 33_000}), "too_large"),
    ("binary frame", b"\x00\x01", "bad_request"),
    ("cancel unknown run", json.dumps({"type": "run.cancel", "run_id": "00000000-0000-0000-0000-000000000000"}), "not_found"),
    ("cancel malformed run id", json.dumps({"type": "run.cancel", "run_id": "x"}), "not_found"),
    ("cancel with nothing running", json.dumps({"type": "run.cancel"}), "conflict"),
    ("decide unknown approval", json.dumps({"type": "approval.decide", "approval_id": "nope", "decision": "approve"}), "not_found"),
]


def until_waiting(frame: dict) -> bool:
    """The run has stopped to wait for a decision, or ended without one (so a test never hangs)."""
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed", "cancelled"}


def reply_of(frames: list[dict]) -> str:
    """The text of the last assistant message among the frames."""
    return [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]["message"]["content"]


def shown(snapshot: dict) -> list[tuple[str, str]]:
    """(role, content) of each message a snapshot shows."""
    return [(m["role"], m["content"]) for m in snapshot["messages"]]


def by_content(snapshot: dict, content: str) -> dict:
    return next(m for m in snapshot["messages"] if m["content"] == content)
