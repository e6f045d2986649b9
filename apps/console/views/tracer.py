"""Console pages: tracer (in progress)."""

urlpatterns: list = []
