"""pytest fixtures for sites using protected_media.

Load it from the top-level conftest.py with
``pytest_plugins = ["protected_media.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from .conf import NGINX_BACKEND, STREAMING_BACKEND

MEDIA_BACKENDS = {"nginx": NGINX_BACKEND, "streaming": STREAMING_BACKEND}


@pytest.fixture(params=list(MEDIA_BACKENDS))
def media_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once per backend ("nginx", then "streaming"), with
    ``SENDFILE_BACKEND`` switched for its duration."""
    name: str = request.param
    with override_settings(SENDFILE_BACKEND=MEDIA_BACKENDS[name]):
        yield name
