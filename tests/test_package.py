"""The package on its own: the wheel built from this checkout holds the app and
nothing else, and a new Django project with only that wheel installed serves a
protected file through it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"
APP = "protected_media"
CONTENT = b"minutes of the meeting\n"


def execute(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # The new project must see only its own virtualenv, not this checkout's.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")
    }
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> str:
    done = execute(*args, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not UV.exists():
        pytest.fail(f"uv is missing from {UV.parent}: it comes with the dev dependencies")
    dist = tmp_path_factory.mktemp("dist")
    run(UV, "build", "--wheel", "--out-dir", dist, "--python", sys.executable, ROOT)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_the_app_and_nothing_else(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = [top for top in tops if top.endswith(".dist-info")]
    assert len(dist_info) == 1
    assert tops == {APP, dist_info[0]}
    assert [name for name in names if "__pycache__" in name or name.endswith(".pyc")] == []
    shipped = {name for name in names if name.startswith(f"{APP}/")}
    on_disk = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / APP).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == on_disk
    for needed in (
        "py.typed",
        "migrations/0001_initial.py",
        "testing/__init__.py",
        "testing/assertions.py",
        "pytest_plugin.py",
        # The nginx config's templates: files the renderer reads, not modules.
        "nginx/templates/site.conf",
        "nginx/templates/standalone.conf",
    ):
        assert f"{APP}/{needed}" in shipped


def test_the_wheel_requires_only_what_protecting_a_file_needs(wheel) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requires = [line.removeprefix("Requires-Dist: ") for line in lines if "Requires-Dist:" in line]
    always = {
        re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r
    }
    assert always == {"django", "django-sendfile2", "aiofiles", "pillow", "filetype"}
    # The metrics are an extra, and the gateway's extra takes it (hatchling
    # writes the extra's own requirements in its place).
    assert "prometheus-client>=0.20; extra == 'metrics'" in requires
    assert "prometheus-client>=0.20; extra == 'gateway'" in requires
    assert not any(r.lower().startswith("tqdm") for r in requires)


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_installing_the_wheel_keeps_a_sites_django_5_2(wheel, python) -> None:
    # On Python 3.12, `Django>=6.0; python_version >= '3.12'` once upgraded a
    # site's Django 5.2 to 6.1 without a word.
    environment = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    django = [
        Requirement(line)
        for line in _metadata(wheel).get_all("Requires-Dist", [])
        if Requirement(line).name.lower() == "django"
    ]
    applying = [r for r in django if r.marker is None or r.marker.evaluate(environment)]
    assert applying, django
    assert all(r.specifier.contains("5.2.19") for r in applying), applying
    if python != "3.11":
        # And a site on 6.x keeps it (Django 6 itself needs Python 3.12).
        assert all(r.specifier.contains("6.1.3") for r in applying), applying


def test_the_classifiers_and_extras_say_what_the_package_supports(wheel) -> None:
    metadata = _metadata(wheel)
    classifiers = set(metadata.get_all("Classifier", []))
    assert {
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    } <= classifiers
    # The ASGI server is one extra away, as the install guide says.
    assert "uvicorn" in metadata.get_all("Provides-Extra", [])
    assert "uvicorn[standard]>=0.30; extra == 'uvicorn'" in metadata.get_all("Requires-Dist", [])
    # So are the reads on the event loop on PostgreSQL, which the gateway takes.
    requires = metadata.get_all("Requires-Dist", [])
    for extra in ("postgres", "gateway"):
        assert f"psycopg[pool]>=3.2; extra == '{extra}'" in requires
        assert f"greenlet>=3.0; extra == '{extra}'" in requires


@dataclass(frozen=True)
class Project:
    folder: Path
    venv: Path
    python: Path
    check: str


@pytest.fixture(scope="module")
def project(wheel, tmp_path_factory) -> Project:
    """A new Django project, with the wheel installed in a fresh virtualenv,
    set up as docs/install.md says, and migrated."""
    home = tmp_path_factory.mktemp("newsite")
    venv = home / "venv"
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    # Dependencies from the package index, pinned as our own environment is.
    run(UV, "pip", "install", "--python", python, "-c", ROOT / "requirements.lock", wheel)
    run(venv / "bin" / "django-admin", "startproject", "mysite", cwd=home)
    folder = home / "mysite"
    run(python, "manage.py", "startapp", "documents", cwd=folder)
    (folder / "documents" / "models.py").write_text(MODELS)
    with (folder / "mysite" / "settings.py").open("a") as settings:
        settings.write(SETTINGS)
    with (folder / "mysite" / "urls.py").open("a") as urls:
        urls.write(URLS)
    (folder / "serve_one.py").write_text(SERVE_ONE)
    check = run(python, "manage.py", "check", cwd=folder)
    run(python, "manage.py", "makemigrations", "documents", cwd=folder)
    run(python, "manage.py", "migrate", cwd=folder)
    return Project(folder, venv, python, check)


def test_the_system_checks_pass(project) -> None:
    assert "System check identified no issues (0 silenced)." in project.check


def test_the_site_model_migrates_with_its_protected_field(project) -> None:
    migration = (project.folder / "documents" / "migrations" / "0001_initial.py").read_text()
    assert "protected_media.fields.ProtectedFileField" in migration
    assert "owner_field='owner'" in migration or 'owner_field="owner"' in migration


def test_the_shipped_migrations_match_the_models(project) -> None:
    # Otherwise every migrate warns of changes, and makemigrations writes a
    # migration into site-packages.
    run(project.python, "manage.py", "makemigrations", "--check", "--dry-run", cwd=project.folder)


def test_the_wheel_alone_installs_neither_prometheus_client_nor_tqdm(project) -> None:
    found = run(project.python, "-c", FIND_MODULES, "protected_media", "prometheus_client", "tqdm")
    assert json.loads(found) == {"protected_media": True, "prometheus_client": False, "tqdm": False}


def test_the_orphans_command_runs_without_the_extras(project) -> None:
    (project.folder / "private").mkdir(exist_ok=True)
    output = run(project.python, "manage.py", "protected_media_orphans", cwd=project.folder)
    assert "Files without a record: 0\n" in output
    assert "Records without a file: 0\n" in output


def test_metrics_without_their_extra_fail_the_checks_with_what_to_install(project) -> None:
    # The app starts (no ImportError); the checks say what is missing.
    (project.folder / "mysite" / "with_metrics.py").write_text(
        'from .settings import *\n\nPROTECTED_MEDIA_METRICS_URL = "/metrics"\n'
    )
    done = execute(
        project.python,
        "manage.py",
        "check",
        "--settings",
        "mysite.with_metrics",
        cwd=project.folder,
    )
    assert done.returncode == 1, done.stderr
    assert (
        "(protected_media.E016) PROTECTED_MEDIA_METRICS_URL '/metrics' is set, but " in done.stderr
    )
    assert 'pip install "django-protected-media-gateway[metrics]"' in done.stderr
    assert "Traceback" not in done.stderr


def test_a_protected_file_is_served_to_its_owner_only(project) -> None:
    result = json.loads(run(project.python, "serve_one.py", cwd=project.folder))

    assert Path(result["module"]).is_relative_to(project.venv)
    name, url = result["name"], result["url"]
    key = url.removeprefix("/media/")
    assert name == f"documents/{key}.txt"
    assert (project.folder / "private" / name).read_bytes() == CONTENT
    owner, other = result["answers"]["owner"], result["answers"]["other"]
    assert owner["status"] == 200
    assert owner["body"] == ""
    assert owner["headers"]["X-Accel-Redirect"] == f"/_protected/{name}"
    assert owner["headers"]["Content-Length"] == "0"
    assert owner["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert owner["headers"]["Content-Disposition"] == 'inline; filename="minutes.txt"'
    assert owner["headers"]["Cache-Control"] == "private, no-store"
    assert (other["status"], other["body"]) == (404, "Not Found\n")
    assert [header for header in other["headers"] if header.lower().startswith("x-accel")] == []
    # The package's own assertions ran in the project too, on both answers.
    assert result["helpers"] == "passed"


FIND_MODULES = textwrap.dedent(
    """
    import importlib.util
    import json
    import sys

    print(json.dumps({name: importlib.util.find_spec(name) is not None for name in sys.argv[1:]}))
    """
)

MODELS = textwrap.dedent(
    """
    from django.conf import settings
    from django.db import models

    from protected_media.fields import ProtectedFileField


    class Document(models.Model):
        owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
        file = ProtectedFileField(upload_to="documents/", owner_field="owner")
    """
)

SETTINGS = textwrap.dedent(
    """
    INSTALLED_APPS += ["protected_media", "documents"]
    SENDFILE_ROOT = str(BASE_DIR / "private")
    SENDFILE_URL = "/_protected/"
    SENDFILE_BACKEND = "django_sendfile.backends.nginx"
    PROTECTED_MEDIA_URL = "/media/"
    STATIC_ROOT = BASE_DIR / "static"
    MIDDLEWARE += ["protected_media.too_large.refusal_middleware"]
    """
)

URLS = textwrap.dedent(
    """
    from django.urls import include

    urlpatterns += [path("media/", include("protected_media.urls"))]
    """
)

SERVE_ONE = f"CONTENT = {CONTENT!r}\n" + textwrap.dedent(
    """
    import json
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django.setup()

    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.test import Client
    from django.test.utils import setup_test_environment

    import protected_media
    from documents.models import Document
    from protected_media.testing import assert_refused, assert_served

    setup_test_environment()
    owner = User.objects.create_user("owner", password="owner-password-4821")
    other = User.objects.create_user("other", password="other-password-9377")
    document = Document(owner=owner)
    document.file.save("minutes.txt", ContentFile(CONTENT), save=True)

    answers = {}
    for user in (owner, other):
        client = Client()
        client.force_login(user)
        response = client.get(document.file.url)
        answers[user.username] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": response.content.decode(),
        }
        if user == owner:
            assert_served(response, document.file)
        else:
            assert_refused(response)

    print(
        json.dumps(
            {
                "module": protected_media.__file__,
                "name": document.file.name,
                "url": document.file.url,
                "answers": answers,
                "helpers": "passed",
            }
        )
    )
    """
)
