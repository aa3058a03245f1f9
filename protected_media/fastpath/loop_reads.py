"""The check's reads on the event loop, in the way of the database that holds
the sessions: ``sqlite_reads`` (a read-only connection to the file, with a
busy timeout of milliseconds) or ``postgres_reads`` (psycopg's async pool,
awaited through ``bridge``). Both run the same proven SQL for the same common
case (``load_on_loop``), and hand anything else to the threads untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, connections, router
from django.http import HttpRequest

from ..conf import conf

if TYPE_CHECKING:
    from ..decision import Found
    from .compiled import Steps
    from .sqlite_reads import InThreads

logger = logging.getLogger("protected_media")

DATABASE_SESSION_ENGINE = "django.contrib.sessions.backends.db"
SQLITE_ENGINE = "django.db.backends.sqlite3"
POSTGRESQL_ENGINE = "django.db.backends.postgresql"
T = TypeVar("T")


class Reads(Protocol):
    async def aload(
        self, request: HttpRequest, key: str, in_threads: InThreads
    ) -> tuple[Any, Found | None] | None: ...

    async def aread_stored(self, steps: Steps[T]) -> T | None: ...

    async def aclose(self) -> None: ...


class LoopReads:
    """One entry point's reads on the loop, of the kind its database takes,
    chosen on its first media request (the settings are complete by then)."""

    def __init__(self) -> None:
        self._reads: Reads | None = None
        self._chosen = False

    async def aload(
        self, request: HttpRequest, key: str, in_threads: InThreads
    ) -> tuple[Any, Found | None] | None:
        """What the entry point's threads would load, read on the loop; None
        where the threads must read it."""
        if not self._chosen:
            self._reads, self._chosen = reads_for_database(), True
        if self._reads is None:
            return None
        return await self._reads.aload(request, key, in_threads)

    async def aread_stored(self, steps: Steps[T]) -> T | None:
        """What ``steps`` read as stored values, where the loop's reads allow
        it (after their proof); None where they do not."""
        if self._reads is None:
            return None
        return await self._reads.aread_stored(steps)

    async def aclose(self) -> None:
        reads, self._reads, self._chosen = self._reads, None, False
        if reads is not None:
            await reads.aclose()


class Proof:
    """Whether an entry point may read on the loop: proven once, in its
    threads, before its first read there. The requests that come while the
    proof runs go to the threads, rather than each proving it again on a
    connection of its own; a proof the database could not finish (None) is
    tried again on a later request."""

    def __init__(self) -> None:
        self.result: bool | None = None
        self._running = False

    async def established(
        self, in_threads: InThreads, prove: Callable[..., bool | None], *args: Any
    ) -> bool:
        if self.result is None:
            if self._running:
                return False
            self._running = True
            try:
                self.result = await in_threads(prove, *args)
            except DatabaseError:
                return False
            finally:
                self._running = False
        return bool(self.result)


def give_up_for_good() -> None:
    """Said once, when an error that is not the database's (a Django internal
    that changed under the loop) sends every later read to the threads."""
    logger.warning(
        "protected_media: reading on the event loop failed; "
        "media requests read in the threads from now on",
        exc_info=True,
    )


def session_alias() -> str:
    """The database Django's database session store reads."""
    return router.db_for_read(_session_model())


@functools.cache
def _session_model() -> type[Any]:
    # The store's own method imports the model on every call: once per request.
    return DatabaseSessionStore.get_model_class()


def reads_for_database() -> Reads | None:
    engine = connections.settings[session_alias()].get("ENGINE")
    if engine == SQLITE_ENGINE:
        from .sqlite_reads import SqliteReads

        return SqliteReads()
    if engine == POSTGRESQL_ENGINE and postgres_reads_installed():
        from .postgres_reads import PostgresReads

        return PostgresReads()
    return None


def reads_on_loop(engine: str | None) -> bool:
    """Whether the settings have the entry point read a database of
    ``engine`` on the loop (each kind's ``enabled``), where its reads are
    proven."""
    if engine == SQLITE_ENGINE:
        from .sqlite_reads import enabled

        return enabled()
    if engine == POSTGRESQL_ENGINE and postgres_reads_installed():
        from .postgres_reads import enabled as postgres_enabled

        return postgres_enabled()
    return False


def postgres_reads_installed() -> bool:
    """psycopg's pool and greenlet (the ``postgres`` extra)."""
    return find_spec("psycopg_pool") is not None and find_spec("greenlet") is not None


def common_case() -> bool:
    """Whether the settings leave media requests in the case the loop reads:
    the default policy (a site's own may read anything) and Django's
    database session store."""
    return conf.policy is None and settings.SESSION_ENGINE == DATABASE_SESSION_ENGINE


def load_on_loop(store: DatabaseSessionStore, key: str) -> tuple[Any, Found | None]:
    """The user and what the database holds for ``key``, as the threads'
    ``_load`` finds them, within ``compiled.reading_on_loop``."""
    # Imported on use: the entry point is imported before Django's app
    # registry is ready, and these import the models.
    from ..decision import find
    from ..keys import is_key
    from .auth import load_user

    request = HttpRequest()
    request.session = store
    user = load_user(request)
    found = find(key) if user.is_authenticated and is_key(key) else None
    return user, found
