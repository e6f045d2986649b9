import argparse
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import ApplicationError
from apps.saml_sp import keys, services
from apps.saml_sp.conf import sp_urls
from apps.saml_sp.models import GroupSync, UpstreamIdentityProvider


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, _, attribute = pair.partition("=")
        if not attribute:
            raise CommandError(f"--map takes field=SAMLAttribute, got {pair!r}.")
        mapping[field.strip()] = attribute.strip()
    return mapping


class Command(BaseCommand):
    help = "Configure upstream IdPs that people may sign in to the portal with (delegated login)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        add = commands.add_parser("add", help="add an upstream IdP")
        add.add_argument("name")
        add.add_argument("--slug", default="")
        source = add.add_mutually_exclusive_group(required=True)
        source.add_argument("--metadata-url")
        source.add_argument("--metadata-file", type=Path)
        add.add_argument("--match", choices=["email", "username", "employee_id"], default="email")
        add.add_argument("--match-attribute", default="", help="SAML attribute holding the value (default: NameID)")
        add.add_argument("--jit", action="store_true", help="create unknown users just in time")
        add.add_argument("--map", action="append", default=[], metavar="FIELD=ATTRIBUTE")
        add.add_argument("--enforced", action="store_true", help="everyone signs in there (no password form)")
        self._add_behaviour_arguments(add)
        update = commands.add_parser("update", help="change how sign-ins through an upstream IdP behave")
        update.add_argument("slug")
        self._add_behaviour_arguments(update)
        commands.add_parser("list", help="list upstream IdPs and the SP URLs to give them")
        key = commands.add_parser("key", help="delegated login's key pair (decrypts assertions, signs logout)")
        key.add_argument("key_action", choices=["list", "create-next", "rotate"])
        refresh = commands.add_parser("refresh", help="fetch the metadata again from its URL")
        refresh.add_argument("slug")
        for name in ("enable", "disable", "enforce", "unenforce"):
            commands.add_parser(name).add_argument("slug")

    @staticmethod
    def _add_behaviour_arguments(parser: CommandParser) -> None:
        parser.add_argument(
            "--accept-idp-initiated",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="accept sign-ins started at the IdP (unsolicited responses); off by default",
        )
        parser.add_argument(
            "--single-logout",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="signing out of the portal signs out of the IdP too (on by default)",
        )
        parser.add_argument(
            "--groups-attribute", default=None, help="SAML attribute naming the person's groups (empty: none)"
        )
        parser.add_argument(
            "--groups-sync",
            choices=GroupSync.values,
            default=None,
            help="join only groups that exist here (default), or create missing ones",
        )

    @staticmethod
    def _behaviour(options: dict) -> dict:
        names = ("accept_idp_initiated", "single_logout", "groups_attribute", "groups_sync")
        return {name: options[name] for name in names if options.get(name) is not None}

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(str(getattr(exc, "message_dict", exc))) from exc

    def _get(self, slug: str) -> UpstreamIdentityProvider:
        upstream = UpstreamIdentityProvider.objects.filter(slug=slug).first()
        if upstream is None:
            raise CommandError(f"No upstream IdP {slug!r}.")
        return upstream

    def _add(
        self,
        *,
        name: str,
        slug: str,
        metadata_url,
        metadata_file,
        match,
        match_attribute,
        jit,
        map,
        enforced,
        **options,
    ) -> None:
        upstream = services.upstream_create(
            **self._behaviour(options),
            actor=None,
            name=name,
            slug=slug,
            metadata_url=metadata_url or "",
            metadata_xml=metadata_file.read_text() if metadata_file else "",
            match_attribute=match,
            match_saml_attribute=match_attribute,
            jit_create=jit,
            attribute_mapping=_mapping(map),
            enforced=enforced,
        )
        self._describe(upstream)

    def _update(self, *, slug: str, **options) -> None:
        self._set(slug, **self._behaviour(options))

    def _key(self, *, key_action: str, **_) -> None:
        if key_action == "create-next":
            key = keys.sp_key_create_next(actor=None)
            self.stdout.write(f"Next key {key.fingerprint_sha256}: published in every SP metadata from now on.")
        elif key_action == "rotate":
            key = keys.sp_key_rotate(actor=None)
            self.stdout.write(f"Active key {key.fingerprint_sha256}; the previous one still decrypts for a while.")
        keys.ensure_active_sp_key()
        for key in keys.sp_key_list():
            self.stdout.write(
                f"{key.status:8} {key.fingerprint_sha256}  {key.key_size} bits, valid until {key.not_after:%Y-%m-%d}"
            )

    def _list(self, **_) -> None:
        for upstream in UpstreamIdentityProvider.objects.order_by("name"):
            self._describe(upstream)

    def _describe(self, upstream: UpstreamIdentityProvider) -> None:
        urls = sp_urls(upstream)
        flags = [
            flag
            for flag, on in (
                ("enabled", upstream.enabled),
                ("enforced", upstream.enforced),
                ("jit", upstream.jit_create),
                ("idp-initiated", upstream.accept_idp_initiated),
                ("single-logout", upstream.single_logout),
            )
            if on
        ]
        self.stdout.write(f"{upstream.slug}: {upstream.name} [{', '.join(flags) or 'disabled'}]")
        self.stdout.write(f"  IdP entity ID:  {upstream.entity_id}")
        self.stdout.write(
            f"  match:          {upstream.match_attribute} <- {upstream.match_saml_attribute or 'NameID'}"
        )
        self.stdout.write(f"  mapping:        {json.dumps(upstream.attribute_mapping)}")
        self.stdout.write(f"  SP entity ID:   {urls['entity_id']} (metadata at the same URL)")
        self.stdout.write(f"  SP ACS URL:     {urls['acs']}")
        self.stdout.write(f"  SP SLO URL:     {urls['slo']}")
        if upstream.groups_attribute:
            self.stdout.write(f"  groups:         {upstream.groups_attribute} ({upstream.get_groups_sync_display()})")

    def _refresh(self, *, slug: str, **_) -> None:
        self._describe(services.upstream_refresh_metadata(actor=None, upstream=self._get(slug)))

    def _set(self, slug: str, **changes) -> None:
        self._describe(services.upstream_update(actor=None, upstream=self._get(slug), **changes))

    def _enable(self, *, slug: str, **_) -> None:
        self._set(slug, enabled=True)

    def _disable(self, *, slug: str, **_) -> None:
        self._set(slug, enabled=False)

    def _enforce(self, *, slug: str, **_) -> None:
        self._set(slug, enforced=True)

    def _unenforce(self, *, slug: str, **_) -> None:
        self._set(slug, enforced=False)
