"""Every model change has its migration: a site that installs the app must not
find `makemigrations` writing one for us."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration() -> None:
    output = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output, stderr=output)
    except SystemExit as exit_:
        pytest.fail(f"makemigrations would write (exit {exit_.code}):\n{output.getvalue()}")
    assert "No changes detected" in output.getvalue()
