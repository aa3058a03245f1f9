from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import conf
from ...nginx import SiteConfig, render_site, render_standalone


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
        if conf.root is None or conf.internal_url is None:
            raise CommandError("SENDFILE_ROOT and SENDFILE_URL must be set.")
        if not settings.STATIC_ROOT:
            raise CommandError("STATIC_ROOT must be set.")
        site = SiteConfig(
            listen=options["listen"],
            upstream=options["upstream"],
            server_name=options["server_name"],
            static_url=str(settings.STATIC_URL),
            static_root=str(Path(settings.STATIC_ROOT).resolve()),
            media_url=conf.url,
            internal_url=conf.internal_url,
            private_root=str(conf.root.resolve()),
            max_body_size=conf.max_upload_size,
        )
        try:
            text = render_site(site)
            if options["standalone"]:
                state_dir = str(Path(options["standalone"]).resolve())
                # nginx started by root hands its workers to "nobody", who could
                # read neither the private files nor its own temp folders here.
                user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
                text = render_standalone(text, state_dir=state_dir, user=user)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["output"]:
            Path(options["output"]).write_text(text)
        else:
            self.stdout.write(text, ending="")
