"""The fast entry point's machinery (``protected_media.asgi``).

- ``threads``: a few long-lived threads that own the database connections the
  entry point's blocking work runs on;
- ``compiled``: ORM lookups whose SQL is compiled once, then run with new values;
- ``auth``: the session and user, loaded as ``django.contrib.auth.get_user``
  does, through those compiled lookups;
- ``probe``: proof, once per process, that those two still agree with Django,
  or the ORM path for good;
- ``loop_reads``: the common case read on the event loop, in the way of the
  sessions' database:
  - ``sqlite_reads``: on SQLite, through a read-only connection with a busy
    timeout;
  - ``postgres_reads``: on PostgreSQL, through psycopg's async pool, whose
    statements ``bridge`` awaits under the same blocking code, and the lean
    path's through libpq by name (``prepared``);
- ``lean`` and ``stored_grant``: a file granted to its owner, answered from
  one read transaction of stored values without building Django's request;
- ``media_routes``: the URLconf without the patterns that cannot match a
  media path, walked for every media request;
- ``sending``: a Django response sent over ASGI.
"""
