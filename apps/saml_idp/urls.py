app_name = "saml_idp"
urlpatterns: list = []
