from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from apps.common.health import CHECK_NAMES, run_health_checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """All checks by default; `?only=database,broker` for a container's liveness probe."""
    requested = tuple(name for name in request.GET.get("only", "").split(",") if name in CHECK_NAMES)
    checks = run_health_checks(requested or CHECK_NAMES)
    healthy = all(result.ok for result in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: result.as_dict() for name, result in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


@cache_control(public=True, max_age=86400)
@require_GET
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, which browsers and tools ask for on every site whatever the pages link to."""
    path = finders.find("favicon.ico")
    if path is None:
        raise Http404("No favicon.")
    return FileResponse(open(path, "rb"), content_type="image/x-icon")  # FileResponse closes the file
