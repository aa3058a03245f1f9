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

``grant_changed`` is sent once for every grant and revocation on a file
(``protected_media.audit_grants``), after the change commits. ``sender`` is
the kind of grant (``"group"``, ``"share"`` or ``"permission"``); receivers
get ``action`` (``"added"`` or ``"removed"``), ``key`` (the file's key, or
None when the row holds no file any more), ``holder`` (the row holding the
file, when known), ``group_id``, ``user_id`` (who received or lost the
grant), ``share`` (the ``ShareLink``), ``permission`` (a codename) and
``actor_id`` (who made the change, None when unknown). It is sent with
``send_robust``.
"""

from django.dispatch import Signal

file_served = Signal()
file_denied = Signal()
grant_changed = Signal()
