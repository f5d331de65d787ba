"""Two recovery sweeps at once never give one run to both: real processes, real PostgreSQL."""

import subprocess
import uuid

import pytest

from tests.conftest import require_services
from tests.live import PYTHON, ROOT

pytestmark = pytest.mark.postgres

SWEEP = """
import asyncio
from conversations.runs import transitions
claimed = asyncio.run(transitions.arun_claim_expired(owner={owner!r}))
print("CLAIMED", " ".join(str(run.id) for run in claimed))
"""

SEED = """
import datetime
from django.contrib.auth.models import User
from django.utils import timezone
from conversations.models import Conversation, Message, Run
user = User.objects.get(username="alice")
past = timezone.now() - datetime.timedelta(minutes=1)
for i in range({count}):
    conversation = Conversation.objects.create(user=user, title=f"c{{i}}")
    message = Message.objects.create(conversation=conversation, role="user", content="hi")
    Run.objects.create(conversation=conversation, user_message=message, status="running", owner="dead", lease_expires_at=past)
"""


def test_two_sweeps_at_once_claim_each_expired_run_exactly_once(templates):
    require_services("postgres")
    database = templates.new_database("postgres")
    count = 200
    seed = subprocess.run([PYTHON, "manage.py", "shell", "-c", SEED.format(count=count)], cwd=ROOT,
                          env=database.env, capture_output=True, text=True)
    assert seed.returncode == 0, seed.stderr
    owners = [f"sweeper-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    sweeps = [
        subprocess.Popen([PYTHON, "manage.py", "shell", "-c", SWEEP.format(owner=owner)], cwd=ROOT,
                         env=database.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for owner in owners
    ]
    claimed = []
    for sweep in sweeps:
        out, err = sweep.communicate(timeout=120)
        assert sweep.returncode == 0, err
        line = next(line for line in out.splitlines() if line.startswith("CLAIMED"))
        claimed.append(set(line.split()[1:]))
    assert not claimed[0] & claimed[1]
    assert len(claimed[0] | claimed[1]) == count
    rows = database.query("SELECT owner, COUNT(*) FROM conversations_run GROUP BY owner")
    assert sorted(n for _, n in rows) == sorted(len(c) for c in claimed if c) and {o for o, _ in rows} <= set(owners)
