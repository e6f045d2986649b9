"""Console pages: audit (in progress)."""

urlpatterns: list = []
