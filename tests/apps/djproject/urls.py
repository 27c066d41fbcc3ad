"""Views and routes of the test project."""

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("hello from django")


@csrf_exempt
def echo(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


def stream(request):
    return StreamingHttpResponse((f"line {i}\n" for i in range(5)), content_type="text/plain")


def error(request):
    raise RuntimeError("django view failed on purpose")


def query(request):
    return JsonResponse({"args": request.GET.dict(), "path": request.path})


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("stream", stream),
    path("error", error),
    path("query", query),
]
