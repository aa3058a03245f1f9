"""The docs say what the code does, and build without a broken link.

Each fact lives on one page of docs/: the settings and check ids in
settings.md, the gateway's variables in gateway.md, the nginx lines of the
install guide in install.md; README.md is the short pitch that links to them.
"""

import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

from protected_media.nginx.from_settings import render_from_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SETTING = r"(?:PROTECTED_MEDIA|SENDFILE)_[A-Z0-9_]+"  # digits too: PROTECTED_MEDIA_S3_BUCKET


def page(name: str) -> str:
    return (DOCS / name).read_text()


def table_rows(text: str, pattern: str) -> set[str]:
    """The first cell of every table row whose first cell is `pattern`."""
    return set(re.findall(rf"^\| `({pattern})` \|", text, re.M))


def settings_read_by_the_app() -> set[str]:
    source = (ROOT / "protected_media" / "conf.py").read_text()
    return set(re.findall(rf'"({SETTING})"', source))


def test_every_setting_read_by_the_app_has_a_row_in_the_settings_table() -> None:
    read = settings_read_by_the_app()
    assert len(read) >= 10
    assert sorted(read - table_rows(page("settings.md"), SETTING)) == []


def test_every_setting_the_docs_name_exists() -> None:
    read = settings_read_by_the_app()
    texts = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    named = {
        (path.name, name)
        for path in texts
        for name in re.findall(rf"`({SETTING})", path.read_text())
    }
    assert sorted((where, name) for where, name in named if name not in read) == []


def test_every_gateway_variable_has_a_row_in_the_gateway_table() -> None:
    code = (ROOT / "gateway" / "settings.py").read_text() + (
        ROOT / "gateway" / "stack.py"
    ).read_text()
    read = set(re.findall(r'"(GATEWAY_[A-Z_]+)"', code))
    assert len(read) >= 10
    documented = table_rows(page("gateway.md"), r"GATEWAY_[A-Z_]+")
    assert sorted(read - documented) == []
    assert sorted(documented - read) == []


def test_every_check_id_has_a_row_in_the_checks_table() -> None:
    # Ids are written whole ("protected_media.E001") or, in a table of
    # similar checks, as their number alone ("E017").
    code = "".join(path.read_text() for path in (ROOT / "protected_media").rglob("*.py"))
    ids = {
        f"protected_media.{number}"
        for number in re.findall(r'"(?:protected_media\.)?([EW]\d{3})"', code)
    }
    assert len(ids) >= 20
    documented = table_rows(page("settings.md"), r"protected_media\.[EW]\d{3}")
    assert sorted(ids - documented) == []
    assert sorted(documented - ids) == []


def test_the_security_table_names_tests_that_exist() -> None:
    """Every test SECURITY.md cites for a rule is a file, or a test in it."""
    text = (ROOT / "SECURITY.md").read_text()
    table = [line for line in text.splitlines() if re.match(r"\| \d+\. ", line)]
    numbers = [int(line[2:].split(".", 1)[0]) for line in table]
    assert numbers == list(range(1, len(table) + 1)) and len(table) >= 10, "one row per rule"
    missing = []
    for line in table:
        cited = re.findall(r"`(tests/[\w/]+\.py|tests/[\w/]+/)(?:::(\w+))?`|`::(\w+)`", line)
        assert cited, line
        current = None
        for path, name, sibling in cited:
            if path:
                current = ROOT / path
                if not current.exists():
                    missing.append(path)
            name = name or sibling
            if name and (current is None or f"def {name}(" not in current.read_text()):
                missing.append(f"{current}::{name}")
    assert missing == []


def test_the_nginx_lines_in_the_guide_are_what_protected_media_nginx_writes(settings) -> None:
    """The install guide's nginx snippet, line by line and in order, is in the
    config the settings of its guide render."""
    guide = page("install.md").split("\n## 6. The nginx config\n", 1)[1]
    (snippet,) = re.findall(r"```nginx\n(.*?)```", guide.split("\n## ", 1)[0], re.S)
    settings.SENDFILE_ROOT = "/srv/site/private"
    settings.SENDFILE_URL = "/_protected/"
    settings.PROTECTED_MEDIA_URL = "/media/"
    rendered = [
        line.strip()
        for line in render_from_settings(
            listen="127.0.0.1:8000", upstream="unix:/run/site/uvicorn.sock", server_name="_"
        ).splitlines()
    ]
    position = 0
    lines = [line.strip() for line in snippet.splitlines() if line.strip()]
    assert len(lines) >= 10
    for line in lines:
        assert line in rendered[position:], f"{line!r} is not rendered (after line {position})"
        position = rendered.index(line, position) + 1


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## The two commands\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in ci


def anchors(path: Path) -> set[str]:
    """The ids MkDocs gives the headings of a page (GitHub's are the same for
    these headings: words, spaces, hyphens and punctuation that both drop)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    headings = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {slugify(heading.replace("`", ""), "-") for heading in headings}


def test_links_outside_the_docs_site_resolve() -> None:
    """README.md and deploy/README.md are not built by MkDocs: their relative
    links, and the anchors in them, are checked here."""
    broken = []
    for source in (ROOT / "README.md", ROOT / "deploy" / "README.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (source.parent / path).resolve() if path else source
            if not resolved.is_file():
                broken.append(f"{source.name}: {target}")
            elif anchor and anchor not in anchors(resolved):
                broken.append(f"{source.name}: {target} (no such heading)")
    assert broken == []


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page left out of
    the navigation, fails the build (mkdocs.yml's validation settings)."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    built = {path.parent.name for path in tmp_path.glob("*/index.html")}
    assert built >= {path.stem for path in DOCS.glob("*.md") if path.stem != "index"}
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "bench.png").is_file()
