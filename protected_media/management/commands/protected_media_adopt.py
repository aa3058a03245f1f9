from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...ops import adopt
from ...ops.orphans import display
from ..progress import ProgressCommand, plural


class Command(ProgressCommand):
    help = (
        "Store the files a field held before it became a ProtectedFileField "
        "(in MEDIA_ROOT or a bucket) through the field: inspected, under new keys, "
        "with records and thumbnails, one row per transaction. Running it again "
        "finishes what a run cut short left; old copies go only with --delete-originals."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("field", help="the protected field, as app_label.Model.field")
        parser.add_argument(
            "--from-storage",
            default="default",
            metavar="ALIAS",
            help="the STORAGES alias that holds the old files (default: default, i.e. MEDIA_ROOT)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="inspect every old file and report what would happen; write nothing",
        )
        parser.add_argument(
            "--delete-originals",
            action="store_true",
            help="delete each old copy once its protected copy is committed",
        )
        self.add_progress_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.start_progress(options)
        self.verbosity = options["verbosity"]
        alias = options["from_storage"]
        try:
            model, field = adopt.resolve_field(options["field"])
            old_storage = adopt.resolve_storage(alias)
        except adopt.AdoptError as error:
            raise CommandError(str(error)) from error
        label = field.source_label
        self.dry_run = dry_run = options["dry_run"]
        adopter = adopt.Adopter(model, field, old_storage, alias, dry_run=dry_run)
        rows = list(adopt.pending(model, field))
        self.stdout.write(
            f"{label}: {plural(len(rows), 'row')} to adopt from storage {alias!r}"
            + (" (dry run: nothing is written)." if dry_run else ".")
        )
        outcomes: list[adopt.Outcome] = []
        try:
            for pk, old_name in self.progress(rows, "Adopting", "rows"):
                outcomes.append(adopter.adopt(pk, old_name))
        except adopt.AdoptError as error:
            self.end_progress_line()
            self._report(outcomes)
            raise CommandError(str(error)) from error
        except KeyboardInterrupt:
            self.end_progress_line()
            self._report(outcomes)
            raise CommandError(
                "Interrupted: every row above is adopted or as it was; run the command "
                "again to go on."
            ) from None
        self._report(outcomes)
        self._originals(model, field, old_storage, alias, delete=options["delete_originals"])

    def _originals(
        self, model: Any, field: Any, old_storage: Any, alias: str, *, delete: bool
    ) -> None:
        waiting = adopt.originals_to_delete(model, field, alias)
        if not waiting:
            return
        if not delete or self.dry_run:
            self.stdout.write(
                f"Old copies of adopted files still in storage {alias!r}: {len(waiting)}. "
                "They stay public wherever that storage is served: run with "
                "--delete-originals to delete them."
            )
            return
        deleted = 0
        for adoption in self.progress(waiting, "Deleting old copies", "files"):
            if adopt.delete_original(adoption, old_storage):
                deleted += 1
        copies = "old copy" if deleted == 1 else "old copies"
        self.stdout.write(f"Deleted {deleted} {copies} from storage {alias!r}.")

    def _report(self, outcomes: list[adopt.Outcome]) -> None:
        counts = Counter(outcome.result for outcome in outcomes)
        write = self.stdout.write
        width = max(len(result.value) for result in adopt.Result)
        for result in adopt.Result:
            if counts[result]:
                write(f"  {result.value:<{width}}  {counts[result]}")
        left = [outcome for outcome in outcomes if outcome.result in adopt.LEFT_AS_THEY_WERE]
        if left:
            write("Left as they were:")
            for outcome in left:
                write(
                    f"  row {outcome.pk}: {display(outcome.old_name)}: "
                    f"{outcome.result.value}: {outcome.detail}"
                )
        if self.verbosity >= 2:
            for outcome in outcomes:
                if outcome.result is adopt.Result.ADOPTED:
                    write(f"  row {outcome.pk}: {display(outcome.old_name)} -> {outcome.detail}")
