"""Console pages: tokens (in progress)."""

urlpatterns: list = []
