"""E-mail backends for tests, loaded by real server processes through EMAIL_BACKEND."""

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
