from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...nginx.from_settings import (
    render_from_settings,
    render_parts_from_settings,
    standalone_user,
)
from ...nginx.render import standalone_folders

DEFAULT_LISTEN = "127.0.0.1:8000"
DEFAULT_SERVER_NAME = "_"
# The state folder holds the access log (media keys, client addresses) and
# nginx's temp files (request bodies being uploaded): nginx's workers run as
# the user who renders it, and no one else needs to look inside.
STATE_FOLDER_MODE = 0o700


class Command(BaseCommand):
    help = (
        "Render the nginx config for the gateway from the Django settings. By default, "
        "a whole server block (with the upstream, maps and limit zones it needs) to "
        "include in nginx's http block. For a site that already has a server block of "
        "its own (TLS, other locations): --http FILE --locations FILE write two files, "
        "the http-level lines to include once in the http block and the locations to "
        "include inside that server block; each location carries the server-level "
        "lines it needs. With --standalone STATE_DIR: a complete nginx.conf, and the "
        "folders it names are created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--listen", help=f"nginx listen address (default {DEFAULT_LISTEN}; whole server only)"
        )
        parser.add_argument(
            "--upstream",
            default="unix:/run/gateway/uvicorn.sock",
            help="where uvicorn listens: host:port or unix:/path",
        )
        parser.add_argument(
            "--server-name",
            help=f"nginx server_name (default {DEFAULT_SERVER_NAME}; whole server only)",
        )
        parser.add_argument(
            "--standalone",
            metavar="STATE_DIR",
            help="render a complete nginx.conf that keeps pid, logs and temp files in "
            "STATE_DIR, and create STATE_DIR and its temp folders (mode 0700) if missing",
        )
        parser.add_argument("--output", "-o", help="write here instead of standard output")
        parser.add_argument(
            "--http",
            metavar="FILE",
            help="with --locations: write the http-level lines (upstreams, maps, log "
            "format, limit zones) here, for an include line in nginx's http block",
        )
        parser.add_argument(
            "--locations",
            metavar="FILE",
            help="with --http: write the location blocks here, for an include line "
            "inside a server block of your own (which must have no 'location /')",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["http"] or options["locations"]:
            self._write_parts(options)
            return
        standalone = options["standalone"]
        state_dir = str(Path(standalone).resolve()) if standalone else None
        try:
            text = render_from_settings(
                listen=options["listen"] or DEFAULT_LISTEN,
                upstream=options["upstream"],
                server_name=options["server_name"] or DEFAULT_SERVER_NAME,
                standalone=state_dir,
                user=standalone_user() if standalone else None,
            )
        except (ImproperlyConfigured, ValueError) as error:
            raise CommandError(str(error)) from error
        if state_dir is not None:
            make_state_folders(state_dir)
        if options["output"]:
            Path(options["output"]).write_text(text)
        else:
            self.stdout.write(text, ending="")

    def _write_parts(self, options: dict[str, Any]) -> None:
        if not (options["http"] and options["locations"]):
            raise CommandError("--http and --locations go together: one file each.")
        # The server block is the site's: nothing of these would be written.
        given = [
            flag
            for flag, name in (
                ("--listen", "listen"),
                ("--server-name", "server_name"),
                ("--standalone", "standalone"),
                ("--output", "output"),
            )
            if options[name]
        ]
        if given:
            raise CommandError(f"{', '.join(given)} cannot go with --http and --locations.")
        try:
            parts = render_parts_from_settings(upstream=options["upstream"])
        except (ImproperlyConfigured, ValueError) as error:
            raise CommandError(str(error)) from error
        Path(options["http"]).write_text(parts.http)
        Path(options["locations"]).write_text(parts.locations)


def make_state_folders(state_dir: str) -> None:
    """The folders the standalone config names, made if missing; a folder
    that exists is left as its owner made it."""
    for folder in map(Path, standalone_folders(state_dir)):
        if folder.is_dir():
            continue
        try:
            folder.mkdir(parents=True, mode=STATE_FOLDER_MODE)
            # mkdir's mode is masked by the umask.
            folder.chmod(STATE_FOLDER_MODE)
        except OSError as error:
            raise CommandError(f"cannot create {folder}: {error.strerror}") from error
