"""What an upload really is, decided from its bytes (``uploads``), at a bounded
cost (``survey`` walks the container before decoding, ``cost`` prices the
decoding), and whether text is plain text (``plain_text``). ``formats``: the
image formats we re-encode and their thumbnails' formats; ``kinds``: what
people call each type of file, for refusals and lists of what is accepted."""

from .formats import IMAGE_FORMATS
from .kinds import accepted, not_accepted
from .uploads import Inspected, UploadRefused, human_size, inspect_upload, raise_if_client_gone

__all__ = [
    "IMAGE_FORMATS",
    "Inspected",
    "UploadRefused",
    "accepted",
    "human_size",
    "inspect_upload",
    "not_accepted",
    "raise_if_client_gone",
]
