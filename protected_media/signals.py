"""The signals of the app: one for every media decision, one for every upload
stored or refused, one for every grant changed.

``file_served`` and ``file_denied`` (the audit signals): one of them is sent
for every media decision. Receivers get these keyword arguments (``sender``
is the decision's kind, ``"key"`` for a media URL or ``"share"`` for a share
link):

- ``request``: the ``HttpRequest``;
- ``user``: the user the request was decided for (anonymous included; None
  when the database could not say who it was);
- ``record``: the ``StoredFile``, or None when the refusal came before one was
  found;
- ``reason``: why: ``"owner"``, ``"staff"``, ``"group"``, ``"permission"``,
  ``"policy"`` or ``"share"`` for ``file_served``; a
  ``protected_media.decision.Reason`` for ``file_denied``;
- ``share``: the ``ShareLink`` of a share link, when one was found;
- ``latency``: the seconds from the request to its decision, handoff
  included (a float).

Both are sent with ``asend_robust``: a receiver that raises is logged and
never changes the answer. The share token is never passed. They are sent on
every media request: a receiver should be an ``async def`` (a plain function
costs a thread hop per request) and quick.

``upload_stored`` is sent for every upload a protected field stores (once,
its thumbnails included), when the file and its record are written (inside
the holder's transaction when there is one, which can still roll back).
``sender`` is the model the field belongs to (``field.model``); receivers
get ``instance`` (the row holding the file), ``field`` (the
``ProtectedFileField`` or ``ProtectedImageField``) and ``record`` (the new
``StoredFile``).

``upload_refused`` is sent once for every upload a protected field refuses,
whether a form's validation or the save found the problem. ``sender`` is
``field.model``; receivers get ``field`` and ``reason``, the
refusal's short name (``protected_media.inspection.UploadRefused.reason``:
``"type_not_allowed"``, ``"text_with_markup"``, ``"too_large"``,
``"too_many_pixels"``, ``"client_gone"``, ``"storage_full"``...; the full
list is in docs/uploads.md).

Both upload signals are sent with ``send_robust``: a receiver that raises is
logged (by Django, on the ``django.dispatch`` logger) and never fails the
upload.

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
upload_stored = Signal()
upload_refused = Signal()
grant_changed = Signal()
