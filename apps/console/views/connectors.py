"""Console pages: connectors (in progress)."""

urlpatterns: list = []
