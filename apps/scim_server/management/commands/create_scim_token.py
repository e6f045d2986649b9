from django.core.management.base import BaseCommand, CommandError

from apps.common.errors import ApplicationError
from apps.directory.models import Group
from apps.directory.selectors import group_identity_q
from apps.scim_server.models import ScimTokenScope
from apps.scim_server.services import scim_token_create


class Command(BaseCommand):
    help = "Create a SCIM bearer token for a provisioning client (an HR system, another IdP) and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A label for the client, shown in the audit trail as scim:<name>.")
        parser.add_argument("--read-only", action="store_true", help="Allow reads only.")
        parser.add_argument("--group", help="Limit the token to the members of this group (id or name).")
        parser.add_argument(
            "--manages-staff",
            action="store_true",
            help="Let the token change staff accounts too (read-only to it otherwise).",
        )

    def handle(self, *args, name: str, read_only: bool, group: str | None, manages_staff: bool, **options) -> None:
        scope_group = None
        if group:
            scope_group = Group.objects.filter(group_identity_q(group)).first()
            if scope_group is None:
                raise CommandError(f"No group {group!r}.")
        scope = ScimTokenScope.READ_ONLY if read_only else ScimTokenScope.READ_WRITE
        try:
            _, secret = scim_token_create(
                actor=None, name=name, scope=scope, scope_group=scope_group, manages_staff=manages_staff
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write("This token is shown once; store it now.")
        self.stdout.write(secret)
