"""Secrets masked out of text that reaches the log: the configured API keys and the
Django secret key, bearer tokens, and anything shaped like an `sk-…` key.

A model server's error may echo the key it was sent (some gateways do, in their 401
message); the log keeps the error's text, with the key masked.
"""

from __future__ import annotations

import functools
import os
import re

from django.conf import settings

MASK = "[redacted]"
# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_NAME = re.compile(r"(_API_KEY|_TOKEN|_SECRET|SECRET_KEY|PASSWORD)$")
SECRET_SHAPES = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+|\bsk-[A-Za-z0-9_-]{8,}")
# Shorter values would mask ordinary words.
MIN_SECRET_CHARS = 8


@functools.cache
def _known_secrets(*configured: str) -> tuple[str, ...]:
    values = set(configured) | {value for name, value in os.environ.items() if SECRET_ENV_NAME.search(name)}
    return tuple(sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _known_secrets(settings.SECRET_KEY, settings.OPENAI_API_KEY):
        text = text.replace(secret, MASK)
    return SECRET_SHAPES.sub(MASK, text)
