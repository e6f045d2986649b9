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


def default_check_then_let_in(user) -> bool:
    """django-scim2's default check is `user.is_authenticated`: evaluated here, it makes Django's
    auth middleware read the signed-in client's session and user, as a stock deployment does on
    every request. Every request is then let in, so the second stock client, which sends no
    session, measures stock with no authentication at all."""
    _ = user.is_authenticated
    return True
