"""Console pages: settings (in progress)."""

urlpatterns: list = []
