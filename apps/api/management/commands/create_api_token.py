from django.core.management.base import BaseCommand, CommandError

from apps.api.services import api_token_create
from apps.common.errors import ApplicationError
from apps.directory.selectors import user_get_by_username


class Command(BaseCommand):
    help = "Create an admin API token for a staff user and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label to tell this token apart later.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = user_get_by_username(username)
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            _, secret = api_token_create(actor=None, user=user, name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write("This token is shown once; store it now.")
        self.stdout.write(secret)
