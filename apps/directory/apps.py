from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "apps.directory"
    label = "directory"

    def ready(self) -> None:
        from apps.common import rowcounts
        from apps.directory.models import Group, User

        # SCIM's totalResults of an unfiltered list is exact and must not cost a COUNT(*) of a
        # million rows per page (apps.common.rowcounts).
        rowcounts.register(USERS_COUNTER, User._meta.db_table)
        rowcounts.register(GROUPS_COUNTER, Group._meta.db_table)


USERS_COUNTER = "directory_users"
GROUPS_COUNTER = "directory_groups"
