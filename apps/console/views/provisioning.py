"""Console pages: provisioning (in progress)."""

urlpatterns: list = []
