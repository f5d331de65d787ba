from axes.helpers import get_client_ip_address
from axes.utils import reset
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in, dispatch_uid="accounts.forget_failures")
def forget_failures(sender, request, user, **kwargs) -> None:
    """A log-in clears the failures of its username from its address, and no others:
    axes's own reset (AXES_RESET_ON_SUCCESS) also clears every failure from the address,
    so one who can log in could guess other users' passwords without end by logging in
    between guesses."""
    address = get_client_ip_address(request)
    if address:
        reset(ip=address, username=user.get_username())
