"""E-mail for tests: a backend loaded by real server processes through EMAIL_BACKEND,
and the e-mails a file-based backend wrote."""

import os
import time

from django.core.mail.backends.filebased import EmailBackend


class SlowFileBackend(EmailBackend):
    """Writes the e-mail, then takes its time: a process killed meanwhile has sent it
    but not recorded that it did."""

    def send_messages(self, email_messages):
        sent = super().send_messages(email_messages)
        time.sleep(float(os.environ.get("SLOW_EMAIL_SECONDS", "5")))
        return sent


def mails(mail_dir) -> list[str]:
    """The e-mails a file-based backend wrote to `mail_dir`, oldest first."""
    return [p.read_text() for p in sorted(mail_dir.glob("*"))] if mail_dir.exists() else []
