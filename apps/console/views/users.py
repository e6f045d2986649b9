"""Console pages: users (in progress)."""

urlpatterns: list = []
