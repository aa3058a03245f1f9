"""Two outside opinions: gixy on the nginx config we render, and Django's
deployment checks on the production settings."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from protected_media.nginx.render import SiteConfig, render_site, render_standalone
from tests.test_deploy import clean_env

BASE_DIR = Path(__file__).resolve().parent.parent
DEPLOYED = BASE_DIR / "deploy" / "nginx" / "gateway.conf"

# host_spoofing flags `proxy_set_header Host $http_host`. It does not apply
# here: Django checks the Host header against ALLOWED_HOSTS and answers 400 to
# any other (tests/stack/attacks/test_configuration.py sends spoofed ones
# through nginx), and `$host` would drop the port that Django's CSRF check
# compares a form's Origin with when the site runs on a port of its own.
GIXY_SKIPS = ("host_spoofing",)


def gixy(path: Path, *skips: str) -> list[dict[str, object]]:
    command = [sys.executable, "-m", "gixy", "--format", "json", str(path)]
    if skips:
        command += ["--skips", ",".join(skips)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.stdout.strip(), done.stderr
    issues: list[dict[str, object]] = json.loads(done.stdout)
    assert (done.returncode == 0) is (issues == []), done.stderr
    return issues


def rendered(tmp_path: Path) -> Path:
    for folder in ("static", "private", "nginx/tmp"):
        (tmp_path / folder).mkdir(parents=True)
    site = render_site(
        SiteConfig(
            listen="127.0.0.1:8000",
            upstream=f"unix:{tmp_path / 'uvicorn.sock'}",
            server_name="_",
            static_url="/static/",
            static_root=str(tmp_path / "static"),
            media_url="/media/",
            internal_url="/_protected/",
            private_root=str(tmp_path / "private"),
            max_body_size=10 * 1024 * 1024,
        )
    )
    path = tmp_path / "nginx" / "nginx.conf"
    path.write_text(render_standalone(site, state_dir=str(tmp_path / "nginx"), user=None))
    return path


def render_command(tmp_path: Path) -> Path:
    """What `make run` writes: the standalone config from manage.py protected_media_nginx."""
    output = tmp_path / "command.conf"
    done = subprocess.run(
        [sys.executable, "manage.py", "protected_media_nginx",
         "--standalone", str(tmp_path / "state"),
         "--listen", "127.0.0.1:8000", "--upstream", f"unix:{tmp_path / 'u.sock'}",
         "-o", str(output)],
        cwd=BASE_DIR,
        env=clean_env(GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_SECRET_KEY="render-only"),
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return output


@pytest.mark.parametrize(
    "which", ["deploy/nginx/gateway.conf", "render_site", "protected_media_nginx"]
)
def test_gixy_finds_nothing(tmp_path: Path, which: str) -> None:
    path = {
        "deploy/nginx/gateway.conf": lambda: DEPLOYED,
        "render_site": lambda: rendered(tmp_path),
        "protected_media_nginx": lambda: render_command(tmp_path),
    }[which]()
    assert gixy(path, *GIXY_SKIPS) == []


def test_gixy_reads_the_config(tmp_path: Path) -> None:
    # The check above can fail: gixy does report an off-by-slash alias.
    broken = DEPLOYED.read_text().replace("location ^~ /static/ {", "location ^~ /static {")
    path = tmp_path / "broken.conf"
    path.write_text(broken)
    assert "alias_traversal" in {issue["plugin"] for issue in gixy(path, *GIXY_SKIPS)}
    # and the one check we skip is the only one it reports on our config
    assert {issue["plugin"] for issue in gixy(DEPLOYED)} <= set(GIXY_SKIPS)


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    settings = {
        "GATEWAY_DATA_DIR": str(tmp_path),
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(50),
        "GATEWAY_DEBUG": "0",
        "GATEWAY_HTTPS": "1",
        "GATEWAY_ALLOWED_HOSTS": "gateway.example.com",
    }
    return clean_env(**{**settings, **overrides})


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    done = check_deploy(production_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr
    assert done.stderr == ""


def test_check_deploy_notices_a_weak_setup(tmp_path: Path) -> None:
    # The check above can fail: without HTTPS the cookies are not secure.
    done = check_deploy(production_env(tmp_path, GATEWAY_HTTPS="0"))
    assert done.returncode != 0
    assert "security.W012" in done.stderr and "security.W004" in done.stderr
