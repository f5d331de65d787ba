from axes.helpers import get_cool_off
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil


def locked_out(request, *args):
    """The log-in page again, with status 429, saying how long to wait: django-axes's
    answer to a log-in its lock-out refused (AXES_LOCKOUT_CALLABLE). The refused try
    counts as a failure too, so this client's failures count for the whole cool-off from
    now. axes's other arguments are not needed (its async middleware passes them one
    place off)."""
    cool_off = get_cool_off(request)
    now = timezone.now()
    context = {
        "form": AuthenticationForm(request, initial={"username": request.POST.get("username", "")}),
        "next": request.POST.get("next", ""),
        "locked_out": (
            "Too many failed log-ins for this username or from your address. "
            f"Try again in {timeuntil(now + cool_off, now)}."
        ),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
