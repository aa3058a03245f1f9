"""What the doctor can find wrong, each with a stable id: what was seen (the
status, header or value, the URL asked for), what it means, and the fix (the
setting and its value, the command to run or the nginx line to write). The
docs list these ids; a test renders every one and looks for its fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# WARN: works, but will not for long (a clock drifting away); not a failure.
Status = Literal["PASS", "FAIL", "SKIP", "WARN"]

RELOAD = "then nginx -t && systemctl reload nginx"
RENDER = f"write it with manage.py protected_media_nginx, {RELOAD}"
MANIFEST_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
SYNC_CLOCKS = "sync both clocks with NTP (systemd-timesyncd or chrony)"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    reason: str  # what was seen and what it means
    finding: str | None = None  # the id of a finding; None for a PASS
    fix: str = ""

    @property
    def line(self) -> str:
        label = f"{self.name} [{self.finding}]" if self.finding else self.name
        fix = f". Fix: {self.fix}" if self.fix else ""
        return f"{self.status} {label}: {self.reason}{fix}"


@dataclass(frozen=True)
class Finding:
    id: str
    check: str  # empty for a finding any check can make: it is given then
    status: Status
    seen: str  # a template: what was observed, then what it means
    fix: str  # a template: the setting, the command or the nginx line

    def result(self, *, check: str = "", **values: object) -> Result:
        return Result(
            check or self.check,
            self.status,
            self.seen.format(**values),
            finding=self.id,
            fix=self.fix.format(**values),
        )


def _table(*findings: Finding) -> dict[str, Finding]:
    return {finding.id: finding for finding in findings}


FINDINGS = _table(
    # -- any check that speaks HTTP ----------------------------------------
    Finding(
        "D001", "", "FAIL",
        "no answer from {site} ({error}): nothing serves the site at that address",
        "start nginx (systemctl start nginx) and give the doctor the address of its listen line",
    ),
    Finding(
        "D002", "", "FAIL",
        "GET {target} answered with {accel}: nginx passed the X-Accel-* headers on "
        "instead of acting on them",
        "give the doctor nginx's address, not uvicorn's, and remove any proxy_pass_header "
        "X-Accel-* or proxy_ignore_headers X-Accel-Redirect from location ^~ {media_url}; "
        f"{RENDER}",
    ),
    # -- static ---------------------------------------------------------------
    Finding(
        "D101", "static", "FAIL",
        'STORAGES["staticfiles"] is {backend}, which writes no manifest: collectstatic '
        "gives no file a hashed name, so nginx cannot let browsers cache static files "
        "for a year",
        'hashed names need STORAGES["staticfiles"] = {{"BACKEND": '
        f'"{MANIFEST_STORAGE}"}}}}, then manage.py collectstatic --noinput',
    ),
    Finding(
        "D102", "static", "FAIL",
        'no readable {manifest} ({error}): STORAGES["staticfiles"] is {backend}, but '
        "collectstatic has not written its manifest since",
        "run manage.py collectstatic --noinput",
    ),
    Finding(
        "D103", "static", "FAIL",
        "{manifest} names no hashed file that is under {static_root}: the files "
        "collectstatic listed are not there",
        "run manage.py collectstatic --noinput with this STATIC_ROOT",
    ),
    Finding(
        "D104", "static", "FAIL",
        "GET {target} answered {status}, not 200: nginx does not serve STATIC_ROOT at STATIC_URL",
        "location ^~ {static_url} {{ alias {static_root}/; }} in nginx; " + RENDER,
    ),
    Finding(
        "D105", "static", "FAIL",
        "GET {target} did not answer the file in STATIC_ROOT: nginx serves {static_url} "
        "from another folder",
        "alias {static_root}/; in location ^~ {static_url}; " + RENDER,
    ),
    Finding(
        "D106", "static", "FAIL",
        "GET {target}: Cache-Control {got}, not [{cache!r}]: browsers keep static files "
        "for the wrong time",
        "add_header Cache-Control $protected_media_static_cache always; in location ^~ "
        "{static_url}, with its map; " + RENDER,
    ),
    Finding(
        "D107", "static", "FAIL",
        "GET {target}: no X-Content-Type-Options: nosniff: browsers may guess a static "
        "file's type",
        'add_header X-Content-Type-Options "nosniff" always; in location ^~ {static_url}; '
        + RENDER,
    ),
    # -- internal -------------------------------------------------------------
    Finding(
        "D201", "internal", "FAIL",
        "GET {target} answered {status}, not 404: the location is not internal, so anyone "
        "may read a private file by its stored name",
        "internal; in location ^~ {internal_url}; " + RENDER,
    ),
    # -- private files ----------------------------------------------------------
    Finding(
        "D301", "private files", "SKIP",
        "no private file to look for yet",
        "upload one, then run manage.py protected_media_doctor again",
    ),
    Finding(
        "D302", "private files", "FAIL",
        "GET {target} without a session answered {status} with the private file: a public "
        "location reads the private files",
        "no root or alias in location ^~ {prefix} may reach them: only location ^~ "
        "{internal_url}, with internal;, reads them; " + RENDER,
    ),
    Finding(
        "D303", "private files", "FAIL",
        "GET {target} without a session answered {status} with the private file: location "
        "{prefix} has no trailing slash, so it reads the folder above its alias",
        "location ^~ {prefix}/ with alias <folder>/; (both with the slash); " + RENDER,
    ),
    # -- anonymous media --------------------------------------------------------
    Finding(
        "D401", "anonymous media", "FAIL",
        "GET {target} without a session answered {status}: PROTECTED_MEDIA_URL is served "
        "without the permission check",
        "location ^~ {media_url} only proxy_pass http://protected_media_app; (no root, no "
        "alias); " + RENDER,
    ),
    Finding(
        "D402", "anonymous media", "FAIL",
        "GET {target} without a session answered {status} {location!r}, not {expected}: "
        "the site refuses otherwise than these settings say",
        "PROTECTED_MEDIA_ANONYMOUS ({anonymous!r} here) and LOGIN_URL ({login_path} here) "
        "alike for the site and the doctor: run it with gateway_manage, which reads the "
        "site's settings",
    ),
    # -- media headers ----------------------------------------------------------
    Finding(
        "D501", "media headers", "SKIP",
        "no file to ask for with a session: nginx adds them to served files only",
        "give --media-url and --session-cookie",
    ),
    Finding(
        "D502", "", "FAIL",
        "GET {target} with the session answered {status}, not 200: the session is not "
        "signed in, or its user may not read the file",
        "sign in as the file's owner and give that sessionid cookie's value with "
        "--session-cookie - and the file's URL with --media-url",
    ),
    Finding(
        "D503", "media headers", "FAIL",
        "GET {target} lacks the right {wrong}: {means}",
        "{lines}; " + RELOAD,
    ),
    # -- nginx config -----------------------------------------------------------
    Finding(
        "D601", "nginx config", "SKIP",
        "no file to compare",
        "give --nginx-config with the file nginx loads (nginx -T names them)",
    ),
    Finding(
        "D602", "nginx config", "FAIL",
        "cannot read {path}: {error}",
        "give --nginx-config the file nginx loads (nginx -T names them), readable by this user",
    ),
    Finding(
        "D603", "nginx config", "FAIL",
        "{path} has no {comment!r} line with its listen, upstream and server name: nothing "
        "says what it was rendered with",
        "manage.py protected_media_nginx --listen <address> --upstream <uvicorn> "
        "--server-name <name> -o {path}, " + RELOAD,
    ),
    Finding(
        "D604", "nginx config", "FAIL",
        "the settings cannot be rendered: {error}",
        "set what it names (manage.py check --deploy gives each hint), then "
        "manage.py protected_media_nginx again",
    ),
    Finding(
        "D605", "nginx config", "FAIL",
        "{path} differs from a fresh render: {difference}",
        "{command}, " + RELOAD,
    ),
    # -- system checks ------------------------------------------------------------
    Finding(
        "D701", "system checks", "FAIL",
        "{count} at the fail level: {ids}",
        "{hints} (manage.py check --deploy prints each in full)",
    ),
    # -- the store (PROTECTED_MEDIA_STORAGE = "s3") ---------------------------------
    Finding(
        "D801", "", "SKIP",
        "the store cannot be checked: {why}",
        "set the PROTECTED_MEDIA_S3_* settings or install the package it names; "
        "manage.py check --deploy says what each setting needs",
    ),
    Finding(
        "D802", "anonymous store read", "SKIP",
        "no probe object to ask for ({error})",
        "the fix of store credentials (D805): PROTECTED_MEDIA_S3_* or the credentials' policy",
    ),
    Finding(
        "D803", "", "FAIL",
        "{asked}: {public}",
        "remove the bucket policy statement or ACL that grants {grant} to everyone "
        '(Principal "*"), and block public access to the bucket',
    ),
    Finding(
        "D804", "", "FAIL",
        "{asked}, not a refusal (4xx), so it cannot be judged",
        "set PROTECTED_MEDIA_S3_ENDPOINT_URL to the store's address",
    ),
    Finding(
        "D805", "store credentials", "FAIL",
        "{step}{action} refused with {code} ({status})",
        "{fix}",
    ),
    Finding(
        "D806", "store credentials", "FAIL",
        "GetObject answered other bytes than PutObject stored: something between here "
        "and the store changes objects",
        "set PROTECTED_MEDIA_S3_ENDPOINT_URL to the store itself, not a cache in front of it",
    ),
    Finding(
        "D807", "store credentials", "FAIL",
        "after DeleteObject answered success, GetObject still read {bucket}/{key}: deleted "
        "files would stay in the bucket",
        "turn off the bucket's Object Lock retention or legal hold (or the rule that keeps "
        "objects), then delete {bucket}/{key}",
    ),
    Finding(
        "D808", "store clock", "SKIP",
        "{seen}: the clocks cannot be compared",
        "compare date -u here and on the store's host",
    ),
    Finding("D809", "store clock", "FAIL", "{shown}: {problems}", SYNC_CLOCKS),
    Finding("D810", "store clock", "WARN", "{shown}: {effect}", SYNC_CLOCKS),
    Finding(
        "D811", "store round trip", "SKIP",
        "no file to fetch",
        "give --media-url and --session-cookie",
    ),
    Finding(
        "D812", "store round trip", "SKIP",
        "--media-url {target} is not PROTECTED_MEDIA_URL<key> of a stored file",
        "give --media-url PROTECTED_MEDIA_URL<key> of a file the database records",
    ),
    Finding(
        "D813", "store round trip", "FAIL",
        "the object of {target} is not in bucket {bucket!r}",
        "copy the files kept before PROTECTED_MEDIA_STORAGE = 's3' into the bucket, under "
        "their stored names",
    ),
    Finding(
        "D814", "store round trip", "FAIL",
        "GET {target} did not answer the bytes its object holds in bucket {bucket!r}: the "
        "site reads another store, or SENDFILE_ROOT",
        "give the site and the doctor the same PROTECTED_MEDIA_STORAGE and PROTECTED_MEDIA_S3_* "
        "settings: run it with gateway_manage",
    ),
    Finding(
        "D815", "store round trip", "FAIL",
        "GET {target} passes on the store's {leaked}",
        "proxy_hide_header for each in the store location; " + RENDER,
    ),
    Finding(
        "D816", "", "FAIL",
        "the store at {endpoint} did not answer ({error})",
        "start the store or open the way to it from this machine, and set "
        "PROTECTED_MEDIA_S3_ENDPOINT_URL to its address",
    ),
)  # fmt: skip


def finding(finding_id: str, *, check: str = "", **values: object) -> Result:
    return FINDINGS[finding_id].result(check=check, **values)
