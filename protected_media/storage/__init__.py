"""Where the private bytes live. ``local``: a folder on this machine's disk."""

from .local import TEMPORARY_PREFIX, ProtectedStorage, protected_storage

__all__ = ["TEMPORARY_PREFIX", "ProtectedStorage", "protected_storage"]
