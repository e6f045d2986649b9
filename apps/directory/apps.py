from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "apps.directory"
    label = "directory"

    def ready(self) -> None:
        from apps.common import rowcounts
        from apps.directory.models import Group, User

        # SCIM's totalResults of an unfiltered list is exact and must not cost a COUNT(*) of a
        # million rows per page (apps.common.rowcounts).
        # Ranked by primary key (SCIM's default order): a deep page is found without an OFFSET that
        # walks half a million index entries.
        rowcounts.register(USERS_COUNTER, User._meta.db_table, ranked_by=User._meta.pk)
        rowcounts.register(GROUPS_COUNTER, Group._meta.db_table, ranked_by=Group._meta.pk)


USERS_COUNTER = "directory_users"
GROUPS_COUNTER = "directory_groups"
