"""GATEWAY_STORAGE and GATEWAY_S3_* as gateway/settings.py reads them."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
SETTINGS = BASE_DIR / "gateway" / "settings.py"
S3_ENV = {
    "GATEWAY_S3_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
    "GATEWAY_S3_BUCKET": "site-private",
    "GATEWAY_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "GATEWAY_S3_SECRET_ACCESS_KEY": "secret/with+signs",
    "GATEWAY_S3_REGION": "eu-west-1",
}


def gateway_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """This process's environment with no GATEWAY_* but ``env`` and a data folder."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DJANGO_SETTINGS_MODULE"
    }
    return {**clean, "GATEWAY_DEBUG": "1", "GATEWAY_DATA_DIR": str(tmp_path / "data"), **env}


def read_settings(monkeypatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """The settings gateway/settings.py makes from ``env``."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    for name, value in gateway_env(tmp_path, **env).items():
        monkeypatch.setenv(name, value)
    return {name: value for name, value in runpy.run_path(str(SETTINGS)).items() if name.isupper()}


def test_local_is_the_default_and_names_no_store(monkeypatch, tmp_path) -> None:
    for env in ({}, {"GATEWAY_STORAGE": ""}, {"GATEWAY_STORAGE": "local", **S3_ENV}):
        read = read_settings(monkeypatch, tmp_path, **env)
        assert read["PROTECTED_MEDIA_STORAGE"] == "local"
        assert [name for name in read if name.startswith("PROTECTED_MEDIA_S3_")] == []


def test_s3_maps_every_variable_onto_its_setting(monkeypatch, tmp_path) -> None:
    read = read_settings(monkeypatch, tmp_path, GATEWAY_STORAGE=" S3 ", **S3_ENV)
    assert read["PROTECTED_MEDIA_STORAGE"] == "s3"
    assert {name: value for name, value in read.items() if "_S3_" in name} == {
        "PROTECTED_MEDIA_S3_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
        "PROTECTED_MEDIA_S3_BUCKET": "site-private",
        "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": "secret/with+signs",
        "PROTECTED_MEDIA_S3_REGION": "eu-west-1",
    }


def test_s3_without_a_region_leaves_the_apps_default(monkeypatch, tmp_path) -> None:
    env = {**S3_ENV, "GATEWAY_S3_REGION": ""}
    read = read_settings(monkeypatch, tmp_path, GATEWAY_STORAGE="s3", **env)
    assert "PROTECTED_MEDIA_S3_REGION" not in read
    assert read["PROTECTED_MEDIA_S3_BUCKET"] == "site-private"


@pytest.mark.parametrize(
    "value",
    [
        "disk",  # a plausible word that is not a choice
        "minio",  # a provider rather than the kind of store
        "s3://site-private",  # a bucket URL where the kind was wanted
        "local,s3",  # two at once
    ],
)
def test_an_unknown_storage_stops_the_start(monkeypatch, tmp_path, value) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        read_settings(monkeypatch, tmp_path, GATEWAY_STORAGE=value)
    assert str(refused.value) == (
        f"GATEWAY_STORAGE must be local or s3 (empty: local), not {value!r}."
    )


def test_manage_py_says_why_it_does_not_start(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "check"],
        cwd=BASE_DIR,
        env=gateway_env(tmp_path, GATEWAY_STORAGE="disk"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "GATEWAY_STORAGE must be local or s3 (empty: local), not 'disk'." in result.stderr
