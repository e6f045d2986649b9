"""python manage.py rotate_idp_key [--create-next | --list]"""

from django.core.management.base import BaseCommand, CommandParser

from apps.common.errors import ApplicationError
from apps.connectors.models import ConnectorKind
from apps.connectors.selectors import connector_list
from apps.saml_idp import keys, selectors


class Command(BaseCommand):
    help = (
        "Rotate the portal's SAML signing key: the next key (published in metadata) becomes the active "
        "one. With --create-next, only generate the next key so that apps can pick it up first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--create-next", action="store_true", help="Generate the next key; do not rotate.")
        group.add_argument("--list", dest="list_keys", action="store_true", help="List the portal's keys and exit.")
        parser.add_argument("--key-size", type=int, choices=[2048, 3072, 4096], default=None)

    def handle(self, *args, create_next: bool, list_keys: bool, key_size: int | None, **options) -> None:
        if list_keys:
            keys.ensure_active_key()
            for key in keys.signing_key_list():
                self.stdout.write(
                    f"{key.status:8} {key.pk} {key.fingerprint_sha256} not after {key.not_after:%Y-%m-%d}"
                )
            return
        if create_next:
            try:
                key = keys.signing_key_create_next(actor=None, key_size=key_size)
            except ApplicationError as exc:
                self.stderr.write(exc.message)
                raise SystemExit(1) from exc
            self.stdout.write(f"Next key {key.pk} ({key.fingerprint_sha256}) is now published in metadata.")
            return
        self._warn_about_apps_without_next_key()
        active = keys.signing_key_rotate(actor=None)
        self.stdout.write(f"Active key is now {active.pk} ({active.fingerprint_sha256}).")

    def _warn_about_apps_without_next_key(self) -> None:
        if keys.portal_next_key() is None:
            self.stderr.write(
                "There was no next key: a new key signs from now on, and every app must be given the new "
                "certificate (its metadata) to keep signing in."
            )
            return
        for connector in connector_list(kind=None).filter(kind__in=[ConnectorKind.SAML, ConnectorKind.SAML_SCIM]):
            pickup = selectors.next_key_pickup(connector)
            if pickup["next_key"] and not pickup["all_clients_have_next_key"]:
                self.stderr.write(f"Warning: {connector.slug} has not fetched metadata with the next key.")
