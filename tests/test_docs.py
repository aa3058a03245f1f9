"""The README documents every setting the app reads."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_read_by_the_app_is_documented() -> None:
    source = (ROOT / "protected_media" / "conf.py").read_text()
    read = set(re.findall(r'"((?:PROTECTED_MEDIA|SENDFILE)_[A-Z_]+)"', source))
    assert len(read) >= 10
    readme = (ROOT / "README.md").read_text()
    assert sorted(name for name in read if f"`{name}`" not in readme) == []


def test_every_setting_the_readme_names_exists() -> None:
    source = (ROOT / "protected_media" / "conf.py").read_text()
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:PROTECTED_MEDIA|SENDFILE)_[A-Z_]+)`", readme))
    assert sorted(name for name in named if f'"{name}"' not in source) == []


def test_every_gateway_variable_is_documented() -> None:
    code = (ROOT / "gateway" / "settings.py").read_text() + (
        ROOT / "gateway" / "stack.py"
    ).read_text()
    read = set(re.findall(r'"(GATEWAY_[A-Z_]+)"', code))
    readme = (ROOT / "README.md").read_text()
    assert sorted(name for name in read if f"`{name}`" not in readme) == []


def test_every_check_id_is_documented() -> None:
    code = "".join(path.read_text() for path in (ROOT / "protected_media").glob("*.py"))
    ids = set(re.findall(r'"(protected_media\.[EW]\d{3})"', code))
    assert len(ids) >= 10
    readme = (ROOT / "README.md").read_text()
    assert sorted(check for check in ids if f"`{check}`" not in readme) == []


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
    """The README's nginx snippet, line by line and in order, is in the config
    the settings of its guide render."""
    from protected_media.nginx.from_settings import render_from_settings

    readme = (ROOT / "README.md").read_text()
    guide = readme.split("## Adding `protected_media` to an existing project", 1)[1]
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
    for line in (line.strip() for line in snippet.splitlines() if line.strip()):
        assert line in rendered[position:], f"{line!r} is not rendered (after line {position})"
        position = rendered.index(line, position) + 1
