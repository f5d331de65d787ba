"""Errors met before a view runs (a CSRF failure, a body Django cannot parse, an unknown
URL) or a crash: under /api/ they answer in JSON like the API's own errors, elsewhere
with Django's views, which show the app's pages templates/404.html and 500.html."""

from django.http import JsonResponse
from django.views import csrf, defaults


def _api(request) -> bool:
    return request.path.startswith("/api/")


def _json(error: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


def bad_request(request, exception):
    if _api(request):
        return _json("bad_request", "the request could not be read", 400)
    return defaults.bad_request(request, exception)


def page_not_found(request, exception):
    if _api(request):
        return _json("not_found", "no such endpoint", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _api(request):
        return _json("server_error", "the server failed; the error is in its log", 500)
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if _api(request):
        return _json("csrf_failed", f"CSRF verification failed: {reason} Send the csrftoken cookie's value as X-CSRFToken.", 403)
    return csrf.csrf_failure(request, reason)
