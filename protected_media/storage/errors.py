"""How a store that did not take a file fails, in terms the upload path can
answer without knowing which store it is."""

from __future__ import annotations

# Seconds a client should wait before sending the upload again while the store
# is out of reach: about one connect timeout and its retries.
STORE_RETRY_AFTER = 10


class StoreError(OSError):
    """The store refused an object (credentials, permissions, a bad request):
    the upload is refused and nothing is kept; an operator must act."""


class StoreUnavailable(StoreError):
    """The store did not answer in time, could not be reached, or said it is
    busy: nothing is kept, and the same upload may succeed in a moment."""
