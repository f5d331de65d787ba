"""The admin's one rule for content (chatproject/privacy.py): message text, tool
arguments and results, approvals' arguments, edited arguments, descriptions and comments,
task titles and the graph's state reach only staff who may view messages.

The walk takes every URL of the admin site (its own patterns and each registered model's,
so a new page is walked without being listed here), each changelist searched for every
planted text, and each action on a planted object, as staff with every other permission.
A superuser's walk over the same URLs finds every planted text: the walk reaches them.
"""

import html
import uuid

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory
from django.urls import URLResolver, resolve, reverse
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.types import Interrupt

from agent.history import sync_saver
from agent.models import Task, ToolExecution
from conversations.admin import EXPORT_KINDS
from conversations.models import Approval, Branch, Conversation, Message, Run, Summary
from chatproject.privacy import CONTENT_PERMISSIONS, HIDDEN

# Django's flush after a transactional test leaves the checkpoint tables (not Django's)
# alone; each test's thread id is new.
pytestmark = pytest.mark.django_db(transaction=True)

PLANTED = {
    name: f"planted{name}{uuid.uuid4().hex[:6]}"
    for name in (
        "usermessage", "reply", "toolcallargs", "toolresult",
        "approvalargs", "approvaledited", "approvaldescription", "approvalcomment",
        "ledgerargs", "ledgerresult", "tasktitle", "checkpointmessage", "checkpointcall", "checkpointwrite",
        "reasoning", "summary",
    )
}
TITLE = "Lunch plans"


def plant(owner: User) -> Conversation:
    conversation = Conversation.objects.create(user=owner, title=TITLE)
    run = Run.objects.create(conversation=conversation, status=Run.Status.SUCCEEDED)
    asked = Message.objects.create(conversation=conversation, role="user", content=PLANTED["usermessage"], run=run)
    run.user_message = asked
    run.save()
    call = {"id": "call-1", "name": "send_email", "args": {"body": PLANTED["toolcallargs"]}}
    Message.objects.create(conversation=conversation, role="assistant", content="", tool_calls=[call], run=run)
    Message.objects.create(
        conversation=conversation, role="tool", content=PLANTED["toolresult"], tool_call_id="call-1",
        tool_name="send_email", run=run,
    )
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content=PLANTED["reply"], reasoning=PLANTED["reasoning"], run=run
    )
    Summary.objects.create(
        conversation=conversation, through_message=reply, through_turn_at=reply.turn_at, content=PLANTED["summary"],
        turns=1, run=run,
    )
    Branch.objects.create(conversation=conversation, forked_at=asked)
    Approval.objects.create(
        id=uuid.uuid4().hex, conversation=conversation, run=run, tool_call_id="call-1", tool="send_email",
        args={"body": PLANTED["approvalargs"]}, edited_args={"body": PLANTED["approvaledited"]},
        description=PLANTED["approvaldescription"], comment=PLANTED["approvalcomment"],
        status=Approval.Status.EDITED, decided_by=owner,
    )
    ToolExecution.objects.create(
        conversation=conversation, run=run, tool_call_id="call-1", tool="send_email",
        args={"body": PLANTED["ledgerargs"]}, status=ToolExecution.Status.SUCCEEDED, result=PLANTED["ledgerresult"],
    )
    Task.objects.create(user=owner, conversation=conversation, title=PLANTED["tasktitle"])
    plant_checkpoint(conversation)
    return conversation


def plant_checkpoint(conversation: Conversation) -> None:
    """A checkpoint of the conversation's thread holding a turn, and a pending interrupt."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {
        "messages": [
            HumanMessage(PLANTED["checkpointmessage"], id="m1"),
            AIMessage("", id="m2", tool_calls=[{"id": "c2", "name": "send_email", "args": {"body": PLANTED["checkpointcall"]}}]),
        ]
    }
    checkpoint["channel_versions"] = {"messages": 1}
    config = {"configurable": {"thread_id": str(conversation.id), "checkpoint_ns": ""}}
    with sync_saver() as saver:
        saved = saver.put(config, checkpoint, {"source": "loop", "step": 1}, {"messages": 1})
        saver.put_writes(saved, [("__interrupt__", [Interrupt(value={"body": PLANTED["checkpointwrite"]}, id="i1")])], "task-1")


def staff_without_content(username: str) -> User:
    """Staff with every permission there is but the ones that show content."""
    content = {tuple(name.split(".")) for name in CONTENT_PERMISSIONS}
    user = User.objects.create_user(username, password="x", is_staff=True)
    user.user_permissions.set(
        p for p in Permission.objects.select_related("content_type") if (p.content_type.app_label, p.codename) not in content
    )
    return user


def registered_objects() -> dict[str, object]:
    """One object of each model the admin registers, by the URL prefix of its pages."""
    found = {}
    for model in admin.site._registry:
        obj = model._default_manager.first()
        assert obj is not None, f"plant an object of {model._meta.label} so that its pages are walked"
        found[f"{model._meta.app_label}/{model._meta.model_name}/"] = obj
    return found


def routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield route, pattern


def fill(route: str, params: list[str], values: dict[str, list[str]]) -> list[str]:
    """The route with each combination of the values of its parameters."""
    paths = ["/admin/" + route]
    for name in params:
        if name not in values:
            pytest.fail(f"the walk cannot fill {name!r} of admin/{route}: give it values here")
        marks = (f"<path:{name}>", f"<int:{name}>", f"<str:{name}>", f"<{name}>")
        group = next((m for m in marks if m in route), None)
        paths = [
            path.replace(group, value) if group else _fill_group(path, name, value)
            for path in paths
            for value in values[name]
        ]
    return paths


def _fill_group(path: str, name: str, value: str) -> str:
    start = path.index(f"(?P<{name}>")
    depth, end = 0, start
    for end in range(start, len(path)):
        depth += {"(": 1, ")": -1}.get(path[end], 0)
        if depth == 0:
            break
    return path[:start] + value + path[end + 1 :]


def admin_pages(conversation: Conversation) -> list[tuple[str, str | None]]:
    """Every admin URL filled with the planted objects, with its pattern's name."""
    objects = registered_objects()
    site_values = {
        "app_label": sorted({model._meta.app_label for model in admin.site._registry}),
        "content_type_id": [str(ContentType.objects.get_for_model(Conversation).id)],
        "url": ["no-such-page/"],
        "kind": list(EXPORT_KINDS),
    }
    pages = []
    for route, pattern in routes(admin.site.get_urls()):
        prefix = next((p for p in objects if route.startswith(p)), None)
        obj = objects[prefix] if prefix else conversation
        own = [quote(str(obj.pk))]
        values = {**site_values, "object_id": own, "id": own}
        params = sorted(pattern.pattern.regex.groupindex)
        pages += [(path, pattern.name) for path in fill(route, params, values)]
    return pages


def visible_text(response) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return html.unescape(body.decode())


def planted_in(text: str) -> set[str]:
    return {name for name, value in PLANTED.items() if value in text}


def search_results(user: User, path: str, value: str) -> int:
    """How many rows the changelist at `path` finds for `value`: the count its view shows
    the user, from the ChangeList the view builds (the page repeats the query, so only
    the count of results is read)."""
    request = RequestFactory().get(path, {"q": value})
    request.user = user
    model_admin = resolve(path).func.model_admin  # the admin's views are wrapped with their ModelAdmin
    return model_admin.get_changelist_instance(request).result_count


def walk(client, user: User, conversation: Conversation) -> dict[str, set[str]]:
    """GET every admin page as the user: the planted texts each shows, by URL.
    Changelists the user may see are also searched for every planted text; each must
    find nothing."""
    shown, searches = {}, {}
    for path, name in admin_pages(conversation):
        if name == "logout":
            continue  # it would end the walk's session
        response = client.get(path)
        assert response.status_code < 500, (path, response.status_code)
        shown[path] = planted_in(visible_text(response))
        if name and name.endswith("_changelist") and response.status_code == 200:
            if response.context["cl"].search_fields:
                for planted, value in PLANTED.items():
                    searches[f"{path}?q={planted}"] = {planted} if search_results(user, path, value) else set()
    return {**shown, **searches}


def run_actions(client, user: User) -> dict[str, set[str]]:
    """Each action of each changelist on a planted object, as its first step (a
    confirmation page, for deleting): the planted texts each response shows."""
    request = RequestFactory().get("/admin/")
    request.user = user
    shown = {}
    for model, model_admin in admin.site._registry.items():
        obj = model._default_manager.first()
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for action in model_admin.get_actions(request):
            response = client.post(changelist, {"action": action, "_selected_action": [str(obj.pk)]})
            assert response.status_code < 500, (changelist, action)
            shown[f"{changelist} {action}"] = planted_in(visible_text(response))
    return shown


@pytest.fixture
def planted(django_user_model):
    owner = django_user_model.objects.create_user("alice", password="x")
    conversation = plant(owner)
    Group.objects.create(name="walkers")
    seen = {"username": "alice", "ip_address": "10.0.0.1", "user_agent": "walker", "path_info": "/accounts/login/"}
    AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**seen)
    AccessFailureLog.objects.create(**seen)
    return conversation


def test_staff_without_the_permission_to_view_messages_see_no_content_anywhere(client, planted):
    carol = staff_without_content("carol")
    client.force_login(carol)
    leaks = {url: found for url, found in {**walk(client, carol, planted), **run_actions(client, carol)}.items() if found}
    assert not leaks

    # The pages were there to read, with the marker in the content's place.
    approval = Approval.objects.get()
    for url in (
        reverse("admin:conversations_approval_change", args=[quote(approval.pk)]),
        reverse("admin:agent_task_changelist"),
        reverse("admin:agent_toolexecution_change", args=[ToolExecution.objects.get().pk]),
        reverse("admin:conversations_conversation_checkpoints", args=[planted.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200 and HIDDEN in visible_text(response), url
    assert TITLE in visible_text(client.get(reverse("admin:conversations_conversation_change", args=[planted.pk])))
    for kind in EXPORT_KINDS:
        assert client.get(reverse("admin:conversations_conversation_export", args=[planted.pk, kind])).status_code == 403
    assert client.get(reverse("admin:conversations_message_changelist")).status_code == 403


def test_a_superusers_walk_finds_every_planted_text(client, planted):
    root = User.objects.create_superuser("root", password="x")
    client.force_login(root)
    found = set().union(*walk(client, root, planted).values(), *run_actions(client, root).values())
    assert found == set(PLANTED)


@pytest.mark.parametrize("permission", CONTENT_PERMISSIONS)
def test_the_permission_to_view_messages_shows_content_and_exports(client, planted, permission):
    reader = staff_without_content("reader")
    app_label, codename = permission.split(".")
    reader.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(reader)
    export = client.get(reverse("admin:conversations_conversation_export", args=[planted.pk, "json"]))
    assert export.status_code == 200 and PLANTED["approvalcomment"] in visible_text(export)
    approval = client.get(reverse("admin:conversations_approval_change", args=[quote(Approval.objects.get().pk)]))
    assert PLANTED["approvaledited"] in visible_text(approval)
    search = client.get(reverse("admin:conversations_conversation_changelist"), {"q": PLANTED["reply"]})
    assert search.context["cl"].result_count == 1


def test_the_hide_setting_keeps_content_from_superusers_too(client, planted, settings):
    settings.ADMIN_HIDE_MESSAGE_CONTENT = True
    root = User.objects.create_superuser("root", password="x")
    client.force_login(root)
    leaks = {url: found for url, found in {**walk(client, root, planted), **run_actions(client, root)}.items() if found}
    assert not leaks
