"""django-scim2's stock adapters over Django's default User and Group, with the least glue: the
default models have no scim_* columns, so the primary key is the SCIM id and groups are `groups`."""

from django.contrib.auth.models import Group, User
from django_scim.adapters import SCIMGroup, SCIMUser

User.scim_external_id = None
User.scim_groups = property(lambda self: self.groups)
Group.scim_external_id = None
Group.scim_display_name = property(lambda self: self.name)


class StockUser(SCIMUser):
    id_field = "id"


class StockGroup(SCIMGroup):
    id_field = "id"


def always_authenticated(user) -> bool:
    return True
