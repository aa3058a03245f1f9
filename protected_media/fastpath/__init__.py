"""The fast entry point's machinery (``protected_media.asgi``).

- ``threads``: a few long-lived threads that own the database connections the
  entry point's blocking work runs on;
- ``compiled``: ORM lookups whose SQL is compiled once, then run with new values;
- ``auth``: the session and user, loaded as ``django.contrib.auth.get_user``
  does, through those compiled lookups;
- ``probe``: proof, once per process, that those two still agree with Django,
  or the ORM path for good;
- ``sqlite_reads``: on SQLite, those lookups run on the event loop for the
  common case, through a read-only connection with a busy timeout;
- ``sending``: a Django response sent over ASGI.
"""
