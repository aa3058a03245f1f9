"""Private Django media: an async permission check, then nginx sends the bytes."""

__version__ = "0.1.0"
