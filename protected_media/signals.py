"""The audit signals: one of them is sent for every media decision.

Receivers get these keyword arguments (``sender`` is the decision's kind,
``"key"`` for a media URL or ``"share"`` for a share link):

- ``request``: the ``HttpRequest``;
- ``user``: the user the request was decided for (anonymous included; None
  when the database could not say who it was);
- ``record``: the ``StoredFile``, or None when the refusal came before one was
  found;
- ``reason``: why: ``"owner"``, ``"staff"``, ``"group"``, ``"permission"``,
  ``"policy"`` or ``"share"`` for ``file_served``; a
  ``protected_media.decision.Reason`` for ``file_denied``;
- ``share``: the ``ShareLink`` of a share link, when one was found.

Both are sent with ``asend_robust``: a receiver that raises is logged and
never changes the answer. The share token is never passed.
"""

from django.dispatch import Signal

file_served = Signal()
file_denied = Signal()
