"""The package says what is public: every name in ``protected_media.__all__``
resolves to the object its home module defines, and importing the package
itself loads no model, so it can sit in INSTALLED_APPS."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import pytest

import protected_media

PUBLIC = [name for name in protected_media.__all__ if name != "__version__"]


def test_all_names_exactly_the_lazily_loaded_names() -> None:
    assert sorted(PUBLIC) == sorted(protected_media._HOMES)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_is_its_home_modules_object(name: str) -> None:
    home = import_module(f"protected_media.{protected_media._HOMES[name]}")
    assert getattr(protected_media, name) is getattr(home, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        protected_media.nothing_here  # noqa: B018


def test_importing_the_package_loads_no_model_and_no_optional_dependency() -> None:
    code = (
        "import sys, protected_media; "
        "print(sorted(m for m in sys.modules if m.startswith(('protected_media.', "
        "'prometheus_client', 'tqdm', 'django.db.models'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
