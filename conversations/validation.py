"""Values no database stores."""

import re

# JSON and URLs carry them, no database stores them: PostgreSQL refuses NUL, and a lone
# surrogate has no UTF-8 encoding.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value) -> bool:
    """Whether a string anywhere in this JSON value holds NUL or a lone surrogate.
    A loop, not recursion: a deep frame must not blow the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
