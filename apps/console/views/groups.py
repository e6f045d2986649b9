"""Console pages: groups (in progress)."""

urlpatterns: list = []
