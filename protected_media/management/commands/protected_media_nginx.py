from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...nginx.from_settings import render_from_settings, standalone_user


class Command(BaseCommand):
    help = "Render the nginx config for the gateway from the Django settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default="127.0.0.1:8000", help="nginx listen address")
        parser.add_argument(
            "--upstream",
            default="unix:/run/gateway/uvicorn.sock",
            help="where uvicorn listens: host:port or unix:/path",
        )
        parser.add_argument("--server-name", default="_")
        parser.add_argument(
            "--standalone",
            metavar="STATE_DIR",
            help="render a complete nginx.conf that keeps pid, logs and temp files in STATE_DIR",
        )
        parser.add_argument("--output", "-o", help="write here instead of standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        standalone = options["standalone"]
        try:
            text = render_from_settings(
                listen=options["listen"],
                upstream=options["upstream"],
                server_name=options["server_name"],
                standalone=str(Path(standalone).resolve()) if standalone else None,
                user=standalone_user() if standalone else None,
            )
        except (ImproperlyConfigured, ValueError) as error:
            raise CommandError(str(error)) from error
        if options["output"]:
            Path(options["output"]).write_text(text)
        else:
            self.stdout.write(text, ending="")
