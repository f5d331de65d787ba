"""Log filters."""

import logging
import traceback

from .redaction import redact


class RefusalsWithoutTraceback(logging.Filter):
    """Django logs every answer in the 400s (a 403 for a missing permission, a 404, a
    400 for a suspicious request) on `django.request` or `django.security.*` with the
    exception that made it, traceback and all. A refusal is expected: it is kept as its
    one line, so that no user, staff or not, can flood the log with tracebacks. Answers
    of 500 and above keep theirs. Django puts the answer's status on such records as
    `status_code`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and its traceback, before any handler
    formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def log_failure(logger: logging.Logger, message: str, *args, error: BaseException) -> None:
    """Log an unexpected error: at ERROR its traceback's frames and exception types, not
    the exceptions' texts, which may quote message contents or tool arguments (an e-mail's
    subject, say); at DEBUG the whole traceback."""
    logger.error(message + "\n%s", *args, _frames_only(error))
    logger.debug(message, *args, exc_info=error)


def _frames_only(error: BaseException) -> str:
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.insert(0, error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    lines = []
    for link in chain:
        lines += traceback.format_tb(link.__traceback__)
        lines.append(f"{type(link).__module__}.{type(link).__qualname__} (its text is logged at DEBUG)\n")
    return "".join(lines).rstrip("\n")
