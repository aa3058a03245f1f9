from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import ERROR, WARNING
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...ops.doctor.client import Site
from ...ops.doctor.runner import gather, run

FAIL_LEVELS = {"ERROR": ERROR, "WARNING": WARNING}


class Command(BaseCommand):
    help = (
        "Check a live deployment from outside: static files, the internal prefix, "
        "anonymous media, security headers, the nginx config, the system checks and, "
        "with PROTECTED_MEDIA_STORAGE = 's3', the bucket."
    )
    # The system checks are one of the doctor's own checks: an error must be
    # reported with the others, not stop the command before it starts.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_url", help="the site's address, e.g. https://gateway.example.com")
        parser.add_argument(
            "--nginx-config",
            type=Path,
            metavar="PATH",
            help=(
                "the file protected_media_nginx wrote and nginx loads; compared with a fresh render"
            ),
        )
        parser.add_argument(
            "--media-url",
            help="a media URL the --session-cookie's user may read, for the served file's headers",
        )
        parser.add_argument(
            "--session-cookie",
            metavar="VALUE",
            help="the value of a signed-in session cookie; '-' reads it from standard input",
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
        parser.add_argument(
            "--fail-level",
            choices=sorted(FAIL_LEVELS),
            default="ERROR",
            help="system check messages at this level or above fail (default ERROR)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            site = Site(options["base_url"], timeout=options["timeout"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        media_target, cookie = self._authorized_fetch(options)
        try:
            inputs = gather(timeout=options["timeout"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        results = run(
            site,
            inputs,
            nginx_config=options["nginx_config"],
            media_target=media_target,
            cookie=cookie,
            fail_level=FAIL_LEVELS[options["fail_level"]],
        )
        for result in results:
            style = self.style.SUCCESS if result.status == "PASS" else self.style.ERROR
            if result.status in ("SKIP", "WARN"):
                style = self.style.WARNING
            self.stdout.write(style(result.status) + result.line[len(result.status) :])
        failed = sum(result.status == "FAIL" for result in results)
        if failed:
            raise CommandError(f"{failed} of {len(results)} checks failed.")

    def _authorized_fetch(self, options: dict[str, Any]) -> tuple[str | None, str | None]:
        media_url, cookie = options["media_url"], options["session_cookie"]
        if (media_url is None) != (cookie is None):
            raise CommandError("--media-url and --session-cookie go together.")
        if media_url is None or cookie is None:
            return None, None
        if cookie == "-":
            cookie = sys.stdin.readline().strip()
        if "=" not in cookie:
            cookie = f"{settings.SESSION_COOKIE_NAME}={cookie}"
        parts = urlsplit(media_url)
        if not parts.path.startswith("/"):
            raise CommandError("--media-url must be a path (/media/<key>) or a full URL.")
        return parts.path + (f"?{parts.query}" if parts.query else ""), cookie
