"""Request size: a body larger than `INTEGRATIONS_MAX_REQUEST_BYTES` is refused by its declared length, before a
byte of it is read.

Django reads a request body up to its Content-Length and no further, and spools uploads to temporary files as it
parses them; the first thing to parse it is usually `CsrfViewMiddleware`. Without a limit in front, a 500 MB upload
is written to /tmp before a view can refuse it as larger than an image may be. Put this middleware before
`CsrfViewMiddleware` (the app's system check `integrations.W007` says when it is missing), and give the reverse proxy
the same limit (nginx: `client_max_body_size`), so such a body is not even received.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

from integrations.conf import app_settings


def too_large_message(length: int, limit: int) -> str:
    return _("This request is %(size)s; at most %(limit)s can be sent at once. Send fewer or smaller images.") % {
        "size": _amount(length, up=True),
        "limit": _amount(limit, up=False),
    }


def _amount(size: int, *, up: bool) -> str:
    """Bytes in MB (or KB, or bytes, for small ones), rounded so the words never understate what was sent."""
    for unit, name in ((1_000_000, "MB"), (1_000, "KB")):
        if size >= unit:
            whole = -(-size // unit) if up else size // unit
            return f"{whole:,} {name}"
    return f"{size:,} bytes"


class RequestSizeLimitMiddleware:
    """Answer 413 to a request whose declared body is over the limit (the API in its error shape, a page in
    words), 400 to one whose Content-Length is not a number; anything else goes on unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            return HttpResponse(_("The request's Content-Length is not a number."), status=400)
        limit = app_settings.MAX_REQUEST_BYTES
        if length <= limit:
            return self.get_response(request)
        message = too_large_message(length, limit)
        if _is_api(request):
            return JsonResponse({"error": {"code": "request_too_large", "message": message}}, status=413)
        return render(request, "integrations/request_too_large.html", {"message": message}, status=413)


def _is_api(request: HttpRequest) -> bool:
    """Whether the path is one of the REST framework's views (they answer in JSON)."""
    from rest_framework.views import APIView

    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return "json" in request.META.get("HTTP_ACCEPT", "")
    view_class = getattr(view, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)
