from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.directory.selectors import user_get_by_username
from apps.portal import lockout


class Command(BaseCommand):
    help = "Lift a sign-in lockout: of a user's account (by username) or of a client address (--ip)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--ip", help="unlock this client IP address instead")

    def handle(self, *args, username: str | None = None, ip: str | None = None, **options) -> None:
        if ip:
            removed = lockout.portal_unlock_ip(actor=None, ip=ip)
            self.stdout.write(f"Unlocked {ip}: {removed} failed attempt(s) removed.")
            return
        if not username:
            raise CommandError("Give a username, or --ip ADDRESS.")
        user = user_get_by_username(username)
        if user is None:
            raise CommandError(f"No user {username!r}.")
        removed = lockout.portal_unlock(actor=None, user=user)
        self.stdout.write(f"Unlocked {user.username}: {removed} failed attempt(s) removed.")
