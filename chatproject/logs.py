"""Log filters."""

import logging


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
