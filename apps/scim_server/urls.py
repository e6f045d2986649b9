app_name = "scim_server"
urlpatterns: list = []
