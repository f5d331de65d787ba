"""Creates a first user on an empty install, so the zero-setup start can be used at once."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the user 'demo' (password from DEMO_PASSWORD, default 'demo') if no user exists yet."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.exists():
            return
        password = os.environ.get("DEMO_PASSWORD", "demo")
        users.objects.create_user("demo", password=password)
        self.stdout.write(f"Created the user 'demo' with the password '{password}'. Change it in /admin/ or with changepassword.")
