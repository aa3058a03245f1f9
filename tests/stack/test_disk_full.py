"""A disk that fills up or turns read-only under a running stack, for real: a
small tmpfs mounted over the upload folder. The upload gets a clear JSON error
(507 when full, 500 when unwritable), no record is made and no partial file is
left; what was stored before is still served."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import start_stack
from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

# Room for a few small files and not for a large one.
TMPFS_SIZE = "64k"
LARGE = b"all work and no play\n" * 10_000  # about 210 KB, under the upload limit
SMALL = b"fits\n"


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        f"mount {' '.join(args)} failed ({done.stderr.strip()}): this test needs root "
        "to mount a small tmpfs as a disk that fills up"
    )


@pytest.fixture
def alice(small_disk) -> Iterator:
    client = small_disk[0].login("alice", "alice-pass-4821")
    yield client
    client.close()


@pytest.fixture
def bob(small_disk) -> Iterator:
    client = small_disk[0].login("bob", "bob-pass-9377")
    yield client
    client.close()


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory) -> Iterator[tuple[Stack, Path]]:
    stack = start_stack(tmp_path_factory, "disk-full")
    folder = stack.private_root / "files"
    folder.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(folder))
    try:
        yield stack, folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        stack.stop()


def listing(client) -> list[dict]:
    return client.get("/api/files/").json()["files"]


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_full_disk_gets_507_and_keeps_nothing(small_disk, alice) -> None:
    stack, folder = small_disk
    kept = upload(alice, "kept.txt", SMALL, "text/plain")
    assert kept.status_code == 201, kept.text
    before = files_in(folder)

    response = upload(alice, "too-big.txt", LARGE, "text/plain")

    assert response.status_code == 507
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "The server has no room for this file; nothing was stored."}
    assert files_in(folder) == before  # no partial file, not even a temporary one
    assert [item["name"] for item in listing(alice)] == ["kept.txt"]
    # What was stored before is still served, and small files still fit.
    served = stack.raw("GET", kept.json()["url"], headers=cookie_header(alice))
    assert (served.status, served.body) == (200, SMALL)
    assert upload(alice, "also-fits.txt", SMALL, "text/plain").status_code == 201
    log = stack.log()
    assert log.count("could not store an upload") == 1
    assert "Traceback" not in log


def test_the_page_says_so_without_javascript(small_disk, bob) -> None:
    stack, folder = small_disk
    before = files_in(folder)
    response = bob.post(
        "/files/",
        data={"csrfmiddlewaretoken": bob.cookies["csrftoken"]},
        files={"file": ("too-big.txt", LARGE, "text/plain")},
        headers={"Origin": stack.url},
    )
    assert response.status_code == 302
    page = bob.get(response.headers["location"])
    assert "The server has no room for this file; nothing was stored." in page.text
    assert files_in(folder) == before
    assert listing(bob) == []


def test_a_read_only_disk_gets_500_and_keeps_nothing(small_disk, alice) -> None:
    stack, folder = small_disk
    before_listing = listing(alice)
    before = files_in(folder)
    mount("-o", "remount,ro", str(folder))
    try:
        response = upload(alice, "blocked.txt", SMALL, "text/plain")
    finally:
        mount("-o", "remount,rw", str(folder))
    assert response.status_code == 500
    assert response.json() == {"error": "The server could not store this file; nothing was stored."}
    assert files_in(folder) == before
    assert listing(alice) == before_listing
    assert "Traceback" not in stack.log()
