"""Recount every exact row counter (apps.common.rowcounts) and choose its key ranges afresh.

Every `migrate` does it; run it after a bulk load into an empty database (the ranges a ranked
counter seeks through are chosen from the rows there at the recount), or on a schedule when many
rows arrived in one part of the key order (UUIDv7 keys, say).
"""

from typing import Any

from django.core.management.base import BaseCommand

from apps.common import rowcounts


class Command(BaseCommand):
    help = "Recount the exact row counters and choose their key ranges again."

    def handle(self, *args: Any, **options: Any) -> None:
        rowcounts.recount_all()
        self.stdout.write(", ".join(sorted(rowcounts.registered())) + ": recounted")
