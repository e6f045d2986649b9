"""Console pages: keys (in progress)."""

urlpatterns: list = []
