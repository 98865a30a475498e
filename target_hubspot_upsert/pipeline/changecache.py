"""Send only what changed: a local SQLite cache of the values HubSpot acknowledged, per object.

One table per HubSpot account (portal; per credential when HubSpot will not tell the account), one
row per object: a 64-bit hash of (object type, id property, id) as the key, a 64-bit hash of the
wire properties HubSpot last acknowledged for that object, the UTC day the row was written, and
(when that value came from one record) a 64-bit hash of the record as it was read, with everything
that decides its conversion (`as_read`). No id or value is stored in clear.

The rules that keep a skip safe:
- A row is written only after HubSpot acknowledged that value for that object, before the id
  is released for its next batch (per-id order). Written rows are committed many batches at a
  time (look-ups see them at once); a crash loses the uncommitted ones, which only makes the next
  run send those records again.
- A row that differs from a value about to be sent is deleted, durably, before the request goes
  out. So whatever happens to the request (crash, timeout after the write, rejection), the cache
  never claims a value other than one HubSpot acknowledged as the object's latest write: it can
  only make the next run send more, never skip a change.
- An input is compared only once no batch holding its id is in flight, so against what that
  batch left (its value written, or the row deleted); merged records are compared as merged.
- Archives (`hard_delete`) delete their objects' rows before they are sent; the associations a
  record asks for are part of its value hash.
- A record read exactly as the one whose value a row holds, under the same SCHEMA, settings, target
  version and HubSpot property definitions, converts to that same value: it is unchanged without
  being validated or converted again (`AsReadSkip`). Anything else, or an id buffered or in flight,
  goes the whole way and is compared by value.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import itertools
import logging
import math
import operator
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from target_hubspot_upsert.core.errors import HubSpotAuthError, HubSpotFatalError, UserFacingError, brief
from target_hubspot_upsert.core.mapping import ObjectTarget, resolve_stream
from target_hubspot_upsert.core.model import CREATED, UPDATED, WRITE, Batch, BatchOutcome, PendingInput, match_key
from target_hubspot_upsert.http.auth import StaticToken

if TYPE_CHECKING:
    from target_hubspot_upsert.core.settings import Settings
    from target_hubspot_upsert.hubspot.client import ApiResponse, HubSpotClient

logger = logging.getLogger("target_hubspot_upsert")
#: Inputs looked up before the change cache's CPU per input is logged at INFO (DEBUG below).
CPU_FIGURE_MIN_INPUTS = 10_000

FORMAT_VERSION = 2  # PRAGMA user_version: the key and value hashes below, the table layout
# Format 2 added the `r` column (the hash of the record as read, see `AsReadSkip.as_read`); a
# format-1 table gains it when a run of this version opens it (its rows have none: their records
# go through the value comparison once, which writes it).
# With skip_unchanged a sink buffers this many distinct ids before it looks them up, in one
# SELECT ... IN (...): 1.4 instead of 1.8 µs per key found than 100 at a time, and fewer switches
# between the reading thread and the workers.
TRIAGE_SIZE = 500
_KEY, _ROW = operator.itemgetter(0), operator.itemgetter(1, 2, 3)  # of a looked-up row (k, h, d, r)
_AS_READ = operator.itemgetter(2)  # of a record waiting on the short path
_LATEST_DAY = 1 << 62  # beyond any day a row is written on (and -_LATEST_DAY before any)
LOOKUP_CHUNK = 500  # keys per SELECT (500 parameters, or 1,002 for `changed_as_read`, fewer where SQLite allows fewer)
# Acknowledged entries are committed in large transactions, sorted by key: one commit per
# 100-entry batch rewrites ~100 random B-tree pages (~6 µs per entry); one per 20,000 costs ~2 µs.
# Entries not yet committed are lost by a crash, which only makes the next run send them again.
COMMIT_ENTRIES = 20_000
COMMIT_SECONDS = 5.0  # ... or when the oldest uncommitted entry is this old (checked at each write)
# Page cache: 16 MB holds the whole table up to ~600,000 objects; larger tables are read through
# the OS cache (SQLite's default, 2 MB, costs ~30% more per look-up).
PAGE_CACHE_KIB = 16_000
SECONDS_PER_DAY = 86_400
LANDED = frozenset({CREATED, UPDATED})  # outcomes after which HubSpot holds what was sent
#: A record waiting on the short path: (record, its id, its hash as read, ...) (`AsReadSkip`).
_AsRead = TypeVar("_AsRead", bound=tuple[Any, str, int, Any])


_TABLE_NAME = re.compile(r"portal_[0-9]+|token_[0-9a-f]{16}")


def credential_key(identity: str) -> str:
    """`token_<16 hex>`: a keyed 64-bit hash of a credential, for a table name (not reversible)."""
    digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8, person=b"thu-change-cache")
    return f"token_{digest.hexdigest()}"


class ChangeCacheError(UserFacingError):
    """The change cache file cannot be opened, read or written."""


def utc_day() -> int:
    """Days since 1970-01-01 (UTC): the stamp that ages entries."""
    return int(time.time() // SECONDS_PER_DAY)


def _int64(digest: bytes) -> int:
    return int.from_bytes(digest, "little", signed=True)


def key_hasher(object_type: str, id_property: str) -> Any:  # noqa: ANN401 - hashlib's blake2b
    """A hash already fed with the object type and id property, for the ids of one stream."""
    return hashlib.blake2b(f"{object_type}\0{id_property}\0".encode(), digest_size=8)


def object_key(object_type: str, id_property: str, record_id: str) -> int:
    """The row key of one object: 64 bits of (canonical object type, id property, id).

    The id as HubSpot matches it (`match_key`: emails in any case, other values exactly), as
    the sink's `PendingInput.id` already holds it.
    """
    h = key_hasher(object_type, id_property)
    h.update(match_key(id_property, record_id).encode("utf-8", "surrogatepass"))
    return _int64(h.digest())


def input_digest(
    properties: Mapping[str, str], associations: Iterable[Sequence[str | int | None]] | None = None,
) -> int | None:
    """64 bits of what an input writes: its wire properties and, optionally, its associations.

    The properties are the serialized strings (so `1.50` and `1.5` hash the same, and nulls
    follow `null_values`: `""` under clear, absent under skip). Associations, when the input
    carries any, are hashed as a set of tuples, e.g. `(to_object_type, to_id_property, label,
    value)`; no associations hashes like properties alone. None when the input cannot be encoded
    (the writer rejects it; it is never cached).
    """
    try:
        data = orjson.dumps(properties, option=orjson.OPT_SORT_KEYS)
        if associations:
            data += b"\0" + b"\0".join(sorted({orjson.dumps(list(a)) for a in associations}))
    except (orjson.JSONEncodeError, TypeError):
        return None
    return _int64(hashlib.blake2b(data, digest_size=8).digest())


def generation_key(object_type: str, id_property: str, value: str) -> int:
    """The row key of an association target's generation (see `ChangeTracker`): never an object's key."""
    return object_key(f"generation:{object_type}", id_property, value)


def links_of(
    item: PendingInput, generations: Mapping[int, int] | None = None,
) -> list[tuple[str | int | None, ...]] | None:
    """The associations an input asks for, as `input_digest` takes them (None: none).

    Each target's generation (when it has one) is part of it: an archived or newly created target
    changes its generation, so every record pointing to it is sent again on its next appearance.
    """
    if not item.links:
        return None
    out: list[tuple[str | int | None, ...]] = []
    for link in item.links:
        spec = link.spec
        entry: tuple[str | int | None, ...] = (spec.to_key, spec.to_id_property, spec.label, link.value)
        generation = (generations or {}).get(generation_key(spec.to_key, spec.to_id_property, link.value))
        out.append((*entry, generation) if generation else entry)
    return out


def lock_account(path: Path, account: str) -> Any:  # noqa: ANN401 - an open file
    """Take this account's write lock on the cache (`<file>.lock`), or raise ChangeCacheError at once.

    One run at a time may write an account's entries: two runs writing different values for the
    same objects could each leave entries the other made stale. The lock is a byte-range lock
    (`fcntl.lockf`) at an offset of the account, so runs for other accounts sharing the file go on;
    it is released when the file is closed, also when the process dies. None where the platform
    has no `fcntl` (Windows): there, run one job per cache file at a time.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        return None
    lock_path = path.with_name(path.name + ".lock")
    handle = lock_path.open("a+b")
    offset = int.from_bytes(hashlib.blake2b(account.encode(), digest_size=4).digest(), "little") & 0x7FFF_FFFF
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:
        handle.close()
        msg = (
            f"Another run is writing the change cache {path} for the same HubSpot account ({account}); "
            "nothing was sent. Run them one after the other (e.g. no overlapping schedules), or give each its "
            "own change_cache_path."
        )
        raise ChangeCacheError(msg) from None
    return handle


class ChangeCache:
    """The SQLite file: look-ups and writes from any thread, one at a time.

    One connection, not a reader and a writer: in WAL mode a commit by another connection empties
    a reader's page cache, and the look-ups load the very pages the acknowledgements then write
    (measured: a third less CPU per record in a first run).

    Written entries wait in memory (`_pending`, seen by look-ups) until COMMIT_ENTRIES of them or
    COMMIT_SECONDS have gathered, or the cache closes; deletes take effect at once, in memory and
    in the file.
    """

    def __init__(self, path: str | Path, account: int | str, *, read_only: bool = False) -> None:
        """Open (or create) the file in WAL mode, with the account's table.

        `account` is the HubSpot account (portal) id, or `token_<hex>` (`credential_key`) when
        HubSpot would not tell the account. `read_only` (dry runs) never creates or changes the
        file or its side files: a missing file or table is an empty cache.
        """
        self.path = Path(path)
        self.account = f"portal_{int(account)}" if isinstance(account, int) else account
        if not _TABLE_NAME.fullmatch(self.account):
            msg = f"not a change cache account key: {self.account!r}"
            raise ValueError(msg)
        self.table = f'"{self.account}"'
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[int, tuple[int, int, int | None]] = {}  # key -> (value hash, day, as read), not committed
        self._pending_since = 0.0  # time.monotonic() of the oldest pending entry
        self.read_only = read_only
        self._as_read_column = "r"  # "NULL" when a dry run reads a table of format 1
        self.committed = 0  # entries committed to the file by this run
        self._conn: sqlite3.Connection | None = None
        self._lock_file: Any = None
        try:
            if read_only:
                self._conn = self._connect_read_only()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = lock_account(self.path, self.account)
                self._conn = self._connect()
                self._setup()
        except (OSError, sqlite3.Error) as exc:
            self._release()
            raise self._error("open", exc) from None
        except BaseException:
            self._release()
            raise
        # S608: the table name is made from an int, every value is a bound parameter.
        self._upsert = f"INSERT OR REPLACE INTO {self.table} (k, h, d, r) VALUES (?, ?, ?, ?)"  # noqa: S608
        self._delete = f"DELETE FROM {self.table} WHERE k = ?"  # noqa: S608

    def _connect(self) -> sqlite3.Connection:
        # Autocommit (isolation_level None): transactions are explicit. Used by several threads,
        # under self._lock.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        return conn

    def _connect_read_only(self) -> sqlite3.Connection | None:
        """A connection that changes nothing on disk (None: no file, or no table for the account).

        `immutable` reads the file without the WAL side files (none exist after a clean close);
        when a WAL file exists (another run has the file open), `mode=ro` reads it too.
        """
        if not self.path.is_file():
            return None
        wal = self.path.with_name(self.path.name + "-wal")
        flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?{flags}", uri=True, timeout=30, isolation_level=None,
            check_same_thread=False,
        )
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.account,))
        if found.fetchone() is None:
            conn.close()
            return None
        self._as_read_column = "r" if self._has_as_read(conn) else "NULL"  # a format-1 table, not changed
        return conn

    def _has_as_read(self, conn: sqlite3.Connection) -> bool:
        return any(row[1] == "r" for row in conn.execute(f"PRAGMA table_info({self.table})"))

    @property
    def _writer(self) -> sqlite3.Connection:
        """The connection, for writes (never called on a read-only cache)."""
        if self._conn is None:
            msg = f"The change cache {self.path} is open read-only (a dry run): nothing is written to it."
            raise ChangeCacheError(msg)
        return self._conn

    def _setup(self) -> None:
        conn = self._writer
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT_VERSION:
            msg = (
                f"The change cache {self.path} was written by a newer version of target-hubspot-upsert "
                f"(format {version}); delete it or set change_cache_path to another file."
            )
            raise ChangeCacheError(msg)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(k INTEGER PRIMARY KEY, h INTEGER NOT NULL, d INTEGER NOT NULL, r INTEGER) WITHOUT ROWID"
        )
        if not self._has_as_read(conn):  # a table of format 1
            conn.execute(f"ALTER TABLE {self.table} ADD COLUMN r INTEGER")
        if version < FORMAT_VERSION:
            conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")

    def _error(self, what: str, exc: BaseException) -> ChangeCacheError:
        return ChangeCacheError(
            f"Could not {what} the change cache {self.path} ({type(exc).__name__}: {exc}). Check that "
            "change_cache_path names a writable file on a disk with free space (delete the file if it "
            "is damaged: the next run then sends every record), or turn skip_unchanged off."
        )

    def _raise_if_closed(self) -> None:
        """Under the lock: a look-up or write after `close` (the run is stopping) is the run's end."""
        if self._closed:
            msg = "The change cache is closed: the run is stopping."
            raise HubSpotFatalError(msg)

    @staticmethod
    @functools.cache
    def _select(table: str, as_read: str, n: int) -> str:
        return f"SELECT k, h, d, {as_read} FROM {table} WHERE k IN ({','.join('?' * n)})"  # noqa: S608 - as above

    def lookup(self, keys: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        """The cached (value hash, day, hash as read or None) of each key that has an entry."""
        found: dict[int, tuple[int, int, int | None]] = {}
        with self._lock:
            self._raise_if_closed()
            try:
                for start in range(0, len(keys), LOOKUP_CHUNK):
                    # In key order, the B-tree's pages are visited in order: a third less CPU per key.
                    chunk = sorted(keys[start : start + LOOKUP_CHUNK])
                    if self._conn is None:
                        break
                    select = self._select(self.table, self._as_read_column, len(chunk))
                    rows = self._conn.execute(select, chunk).fetchall()
                    found.update(zip(map(_KEY, rows), map(_ROW, rows), strict=True))  # k -> (h, d, r), no Python loop
            except sqlite3.Error as exc:
                raise self._error("read", exc) from None
            pending = self._pending
            if pending:  # newer than the file
                for k in keys:
                    entry = pending.get(k)
                    if entry is not None:
                        found[k] = entry
        return found

    @staticmethod
    @functools.cache
    def _select_changed(table: str, as_read: str, n: int) -> str:
        # The keys (of n (key, hash as read) pairs) whose row is missing, holds another hash as read
        # or was written outside the days [?, ?]; the pairs are scanned in the order given, each
        # row found by its primary key.
        pairs = ",".join(["(?,?)"] * n)
        as_read = "t.r" if as_read == "r" else "NULL"
        return (
            f"SELECT v.column1 FROM (VALUES {pairs}) AS v LEFT JOIN {table} AS t ON t.k = v.column1 "  # noqa: S608 - as above
            f"WHERE {as_read} IS NULL OR {as_read} <> v.column2 OR t.d < ? OR t.d > ?"
        )

    def changed_as_read(self, keys: Sequence[int], as_read: Sequence[int], oldest: float, newest: float) -> set[int]:
        """Of `keys`, those without an entry that holds the hash as read beside it and was written in [oldest, newest].

        What `lookup` finds, compared in SQLite: a re-sync in which nothing changed fetches no row
        (a third of the CPU per key of fetching each row and comparing it here). Entries not
        committed yet (`_pending`) are compared here, as `lookup` sees them.
        """
        changed: set[int] = set()
        with self._lock:
            self._raise_if_closed()
            pending = self._pending
            if pending:  # newer than the file: compared here
                in_file_keys, in_file_hashes = [], []
                for k, r in zip(keys, as_read, strict=True):
                    entry = pending.get(k)
                    if entry is None:
                        in_file_keys.append(k)
                        in_file_hashes.append(r)
                    elif entry[2] != r or not oldest <= entry[1] <= newest:
                        changed.add(k)
                keys, as_read = in_file_keys, in_file_hashes
            conn = self._conn
            if conn is None:  # a dry run without a file: nothing is cached
                changed.update(keys)
                return changed
            try:
                # Days as SQLite binds them (a signed 64-bit integer, or a float such as infinity).
                days = (max(oldest, -_LATEST_DAY), min(newest, _LATEST_DAY))
                # Two parameters per key, and two days: within SQLite's limit (999 before SQLite 3.32).
                step = max(1, min(LOOKUP_CHUNK, (conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 2) // 2))
                for start in range(0, len(keys), step):
                    chunk = keys[start : start + step]
                    select = self._select_changed(self.table, self._as_read_column, len(chunk))
                    pairs = zip(chunk, as_read[start : start + step], strict=True)
                    params: list[float] = [*itertools.chain.from_iterable(pairs), *days]
                    changed.update(map(_KEY, conn.execute(select, params).fetchall()))
            except sqlite3.Error as exc:
                raise self._error("read", exc) from None
        return changed

    def write(
        self, rows: Sequence[tuple[int, int, int, int | None]], gone: Sequence[int] = (), *, durable: bool = False,
    ) -> None:
        """Delete the `gone` keys now; note the (key, hash, day, hash as read) rows, committed with later ones.

        `durable` syncs the deletes to disk before returning (deletes that must hold before a
        request goes out, even through a power loss); other commits may be lost by a power loss
        (never by a crash of the process), which only makes the next run send more.
        """
        if (not rows and not gone) or self.read_only:
            return
        with self._lock:
            self._raise_if_closed()
            pending = self._pending
            if gone:
                for k in gone:
                    pending.pop(k, None)
                self._commit((), gone, durable=durable)
            if rows:
                if not pending:
                    self._pending_since = time.monotonic()
                for k, h, d, r in rows:
                    pending[k] = (h, d, r)
                if len(pending) >= COMMIT_ENTRIES or time.monotonic() - self._pending_since >= COMMIT_SECONDS:
                    self._commit_pending()

    def _commit_pending(self) -> None:
        """Commit the pending entries (under the lock). On failure they are dropped: sent again next run."""
        rows = sorted((k, h, d, r) for k, (h, d, r) in self._pending.items())  # in key order: fewer pages touched
        self._pending = {}
        self._commit(rows, ())
        self.committed += len(rows)

    def _commit(
        self, rows: Sequence[tuple[int, int, int, int | None]], gone: Sequence[int], *, durable: bool = False,
    ) -> None:
        """One transaction: delete the `gone` keys, then write the rows (under the lock)."""
        conn = self._writer
        try:
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(self._delete, [(k,) for k in gone])
                conn.executemany(self._upsert, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise self._error("write", exc) from None

    def close(self) -> None:
        """Commit what is pending, then close the connection.

        The last connection to close folds the WAL back into the file. A failed commit is raised
        after the connection is closed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._pending:
                    self._commit_pending()
            finally:
                if self._conn is not None:
                    self._conn.close()
                self._release()

    def _release(self) -> None:
        """Let another run write this account's entries (closing the lock file releases its lock)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


class ChangeTracker:
    """The run's use of the cache: which inputs to skip, and what to write once HubSpot answers.

    Hooks: each stream buffer's `ObjectTriage.triage` (main thread) decides; the runtime calls
    `before_write`, `acknowledged` and `write_failed` on the worker that sends a batch (archives
    included).
    """

    def __init__(
        self, settings: Settings, client: HubSpotClient, *, today: Callable[[], int] = utc_day,
    ) -> None:
        """Nothing is opened until the first records need a look-up."""
        self.settings = settings
        self.path = settings.change_cache_path
        self.max_age_days = settings.change_cache_max_age_days
        # Generations: nanoseconds at the start of the run, then one more per archived or created
        # association target, so a number is never reused across runs (wall clocks aside).
        self._generation = itertools.count(time.time_ns())
        self.full_resync = settings.full_resync
        # A dry run looks up (its report shows what a real run would skip) and writes nothing.
        self.read_only = settings.dry_run
        self.today = today
        self._client = client
        self._cache: ChangeCache | None = None
        self._open_lock = threading.Lock()
        self._account: concurrent.futures.Future[str] | None = None  # the account look-up, started early
        # A bound on the look-up's own retry loop (each try within request_timeout, waits between).
        self._account_wait_s = (settings.request_timeout + 60.0) * (settings.max_retries + 1)
        self._count_lock = threading.Lock()
        self._write_warned = False
        # What the cache costs, in CPU seconds of the threads that did the work (logged at close).
        self.looked_up = 0
        self.skipped = 0
        self.skipped_as_read = 0  # of them, found unchanged as read (`AsReadSkip`)
        self.lookup_cpu = 0.0
        self.written = 0
        self.write_cpu = 0.0

    # --- opening ------------------------------------------------------------------------

    def prefetch(self) -> None:
        """Ask HubSpot for the token's account now, in the background.

        It overlaps the first catalogue read; `cache` waits for the answer and raises its error.
        """
        with self._open_lock:
            if self._account is not None or self._cache is not None:
                return
            self._account = concurrent.futures.Future()
        account = self._account

        def fetch() -> None:
            try:
                account.set_result(self._account_key())
            except BaseException as exc:  # noqa: BLE001 - handed to the thread that opens the cache
                account.set_exception(exc)

        threading.Thread(target=fetch, name="change-cache-account", daemon=True).start()

    @property
    def cache(self) -> ChangeCache:
        """The cache of this token's HubSpot account, opened on first use."""
        if self._cache is None:
            with self._open_lock:
                if self._cache is None:
                    account = self._account_key() if self._account is None else self._prefetched()
                    self._cache = ChangeCache(self.path, account, read_only=self.read_only)
                    logger.info(
                        "skip_unchanged: change cache %s, table %s; entries older than %d day(s) are sent again%s.",
                        self.path, self._cache.account, self.max_age_days,
                        "; full resync: every record is sent and the cache refreshed" if self.full_resync else "",
                    )
        return self._cache

    def _prefetched(self) -> str:
        assert self._account is not None  # noqa: S101 - prefetch() ran
        try:
            return self._account.result(timeout=self._account_wait_s)
        except concurrent.futures.TimeoutError:
            msg = (
                f"skip_unchanged: HubSpot did not tell which account the token belongs to within "
                f"{self._account_wait_s:.0f} s (GET /account-info/v3/details). Check the network, or turn "
                "skip_unchanged off."
            )
            raise HubSpotFatalError(msg) from None

    def _account_key(self) -> str:
        """The table of the token's HubSpot account, so one file never mixes two accounts.

        The account id from `GET /account-info/v3/details`, else (a static token) from HubSpot's
        token metadata; when HubSpot tells neither, a hash of the credential itself: a token
        belongs to one account, so this never mixes accounts either, and a new token starts empty.
        """
        asked: list[str] = []
        for ask in (self._portal_from_account_info, self._portal_from_token_info):
            portal = ask(asked)
            if portal is not None:
                return f"portal_{portal}"
        logger.warning(
            "skip_unchanged: HubSpot did not tell which account the token belongs to (%s), so the change "
            "cache is kept per token: another token (even of the same account) starts from an empty cache "
            "and sends every record once.", "; ".join(asked),
        )
        return credential_key(self._client.auth.identity())

    def _portal_from_account_info(self, asked: list[str]) -> int | None:
        try:
            response = self._client.get_account_details()
        except HubSpotAuthError as exc:  # 403: the token may not read the account's details
            asked.append(f"GET /account-info/v3/details: {brief(str(exc), 200)}")
            return None
        return _portal_in(response, "portalId", "GET /account-info/v3/details", asked)

    def _portal_from_token_info(self, asked: list[str]) -> int | None:
        auth = self._client.auth
        if not isinstance(auth, StaticToken):
            return None  # OAuth: HubSpot's token metadata endpoints take the token in the URL path
        try:
            response = self._client.get_token_details(auth.token())
        except HubSpotAuthError as exc:
            asked.append(f"POST /oauth/v2/private-apps/get/access-token-info: {brief(str(exc), 200)}")
            return None
        return _portal_in(response, "hubId", "POST /oauth/v2/private-apps/get/access-token-info", asked)

    def for_object(self, target: ObjectTarget) -> ObjectTriage:
        """The look-ups of one stream's object type and id property."""
        return ObjectTriage(self, target)

    # --- hooks on the worker that sends a batch -----------------------------------------

    @staticmethod
    def _take(batch: Batch) -> list[tuple[PendingInput, tuple[int, int | None, bool]]]:
        """The batch's inputs that were looked up, with their cache entries (cleared on the inputs)."""
        taken = []
        for item in batch.inputs:
            entry = item.cache_entry
            if entry is not None:
                item.cache_entry = None
                taken.append((item, entry))
        return taken

    def before_write(self, batch: Batch) -> None:
        """Delete, durably, every cached value that differs from what this batch sends."""
        if self.read_only:
            return
        stale = [entry[0] for item in batch.inputs if (entry := item.cache_entry) is not None and entry[2]]
        bumped: list[tuple[int, int, int, int | None]] = []
        if batch.op != WRITE:  # archives: records pointing to these objects are sent again next time
            target = batch.target
            bumped = self._generations(target.canonical_type, target.id_property, batch.inputs)
        if stale or bumped:
            self.cache.write(bumped, stale, durable=True)

    def acknowledged(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Note the values HubSpot acknowledged (committed with later ones); no entry for the rest."""
        if self.read_only:
            self._take(batch)
            return
        started = time.thread_time()
        # Rejected, or landed without every association it asked for: no entry.
        failed = {id(entry[0]) for entry in outcome.rejected} | {id(entry[0]) for entry in outcome.link_rejected}
        day = self.today()
        rows: list[tuple[int, int, int, int | None]] = []
        gone: list[int] = []
        for item, (key, digest, _replaces) in self._take(batch):
            if digest is not None and item.result in LANDED and id(item) not in failed:
                rows.append((key, digest, day, item.as_read))
            else:  # archived, skipped by the write mode (not found, exists), rejected
                gone.append(key)
        target = batch.target
        if (target.canonical_type, target.id_property) in self.link_targets:
            # A created object is a new object id for records that point to it (it may replace one
            # archived outside this target): they are sent again, so their associations follow.
            created = [item for item in batch.inputs if item.result == CREATED and item.id]
            rows += self._generations(target.canonical_type, target.id_property, created)
        try:
            self.cache.write(rows, gone)
        except (ChangeCacheError, HubSpotFatalError) as exc:
            # Not writing is safe (those records are sent again next run); the run goes on.
            if not self._write_warned:
                self._write_warned = True
                logger.warning("%s The records it could not note are sent again next run.", exc)
        with self._count_lock:
            self.written += len(rows)
            self.write_cpu += time.thread_time() - started

    def _generations(
        self, object_type: str, id_property: str, items: Iterable[PendingInput],
    ) -> list[tuple[int, int, int, int | None]]:
        """New generation rows for these objects (a fresh number each time: never a value seen before)."""
        if not id_property:
            return []
        day = self.today()
        fresh = self._generation
        return [(generation_key(object_type, id_property, item.id), next(fresh), day, None) for item in items]

    @functools.cached_property
    def link_targets(self) -> frozenset[tuple[str, str]]:
        """(canonical object type, unique property) of every association target the settings name."""
        mappings = self.settings.object_mappings or {}
        return frozenset(
            (spec.to_key, spec.to_id_property)
            for stream in mappings
            for spec in resolve_stream(stream, mappings).associations
        )

    def note(self, rows: list[tuple[int, int, int, int | None]]) -> None:
        """Rewrite rows whose value stays (a hash as read added); a failure only makes the next run slower."""
        try:
            self.cache.write(rows)
        except (ChangeCacheError, HubSpotFatalError):
            logger.debug("Could not note records as read in the change cache.", exc_info=True)

    def write_failed(self, batch: Batch) -> None:
        """No outcome for the batch: its objects keep no entry."""
        if self.read_only:
            self._take(batch)
            return
        gone = [key for _item, (key, _digest, _replaces) in self._take(batch)]
        try:
            self.cache.write((), gone)
        except (ChangeCacheError, HubSpotFatalError):
            logger.debug("Could not clear change cache entries of a failed batch.", exc_info=True)

    def close(self) -> None:
        """Close the file, if it was opened, and say what the cache cost."""
        if self._cache is None:
            return
        started = time.thread_time()
        try:
            self._cache.close()  # commits the entries still pending
        except ChangeCacheError as exc:
            logger.warning("%s The records it could not note are sent again next run.", exc)
        self.write_cpu += time.thread_time() - started
        logger.info(
            "skip_unchanged: %d input(s) looked up, %d unchanged (%d of them found as read, without "
            "conversion); %d entries written.",
            self.looked_up, self.skipped, self.skipped_as_read, self._cache.committed,
        )
        # Per-input CPU means something only over many inputs (start-up costs dominate a small run).
        per_entry = f"{1e6 * self.write_cpu / self.written:.2f}" if self.written else "-"
        logger.log(
            logging.INFO if self.looked_up >= CPU_FIGURE_MIN_INPUTS else logging.DEBUG,
            "Change cache CPU: %.2f µs per input looked up (hashing and look-up), %s µs per entry written.",
            1e6 * self.lookup_cpu / max(self.looked_up, 1), per_entry,
        )


def _portal_in(response: ApiResponse, field: str, what: str, asked: list[str]) -> int | None:
    """The account id in a 200 answer's `field`, else None (and why, in `asked`)."""
    body = response.body if isinstance(response.body, dict) else {}
    portal = body.get(field)
    if response.status == 200 and isinstance(portal, int) and not isinstance(portal, bool) and portal >= 0:
        return portal
    message = body.get("message")
    detail = f", {brief(message, 200)}" if isinstance(message, str) and message else ""
    asked.append(f"{what}: {response.status} without a {field}{detail}")
    return None


@dataclass(slots=True)
class Triaged:
    """What the cache decided for a buffer's ready inputs."""

    unchanged: list[PendingInput]  # HubSpot has these values: not sent
    changed: list[PendingInput]  # to send, each with its cache entry
    passthrough: list[PendingInput]  # not looked up (archives, objects without unique property): sent as usual


class ObjectTriage:
    """The look-ups of one object type and id property: which inputs HubSpot already has.

    It decides and notes each input's cache entry (`PendingInput.cache_entry`, for the worker that
    sends it); the stream's buffer moves the inputs.
    """

    def __init__(self, tracker: ChangeTracker, target: ObjectTarget) -> None:
        """Bind to an object type and id property."""
        self.tracker = tracker
        self.hasher = key_hasher(target.canonical_type, target.id_property)

    def _hashes(self, items: list[PendingInput]) -> list[tuple[int, int | None]]:
        """(row key, value hash) of each input: `object_key` and `input_digest`, inlined (per record)."""
        new = self.hasher.copy
        from_bytes = int.from_bytes
        blake2b = hashlib.blake2b
        dumps = orjson.dumps
        sort_keys = orjson.OPT_SORT_KEYS
        out: list[tuple[int, int | None]] = []
        generations = self._link_generations(items)
        for item in items:
            h = new()
            h.update(item.id.encode("utf-8", "surrogatepass"))
            key = from_bytes(h.digest(), "little", signed=True)
            if item.op != WRITE:
                out.append((key, None))  # an archive: its entry goes before it is sent
            elif item.links:
                out.append((key, input_digest(item.properties, links_of(item, generations))))
            else:
                try:
                    wire = dumps(item.properties, option=sort_keys)
                except orjson.JSONEncodeError:
                    out.append((key, None))  # not encodable: the writer rejects it
                    continue
                out.append((key, from_bytes(blake2b(wire, digest_size=8).digest(), "little", signed=True)))
        return out

    def _link_generations(self, items: list[PendingInput]) -> dict[int, int]:
        """The generations of the association targets these inputs point to (those that have one)."""
        keys = list({
            generation_key(link.spec.to_key, link.spec.to_id_property, link.value)
            for item in items if item.links and item.op == WRITE for link in item.links
        })
        if not keys:
            return {}
        return {key: generation for key, (generation, _day, _) in self.tracker.cache.lookup(keys).items()}

    def _fresh_days(self) -> tuple[float, float]:
        """The days a row may have been written on to still skip an input (not too old, not in the future).

        Under `full_resync` an empty range: every input is sent, and its row refreshed.
        """
        tracker = self.tracker
        if tracker.full_resync:
            return math.inf, -math.inf
        today = tracker.today()
        return today - tracker.max_age_days + 1, today

    def changed_as_read(self, waiting: list[_AsRead]) -> list[_AsRead]:
        """Of records waiting on the short path (`AsReadSkip`), those not found unchanged as read, in order.

        Each is a tuple whose second item is its id and third its hash as read. It is unchanged
        when its object's row is fresh and holds that hash; those are counted here. The others go
        the whole way and are looked up again, by value, by `triage`, which counts them then.
        """
        started = time.thread_time()
        tracker = self.tracker
        new = self.hasher.copy
        from_bytes = int.from_bytes
        keys = []
        for entry in waiting:  # the row key (`object_key`, inlined)
            h = new()
            h.update(entry[1].encode("utf-8", "surrogatepass"))
            keys.append(from_bytes(h.digest(), "little", signed=True))
        oldest, newest = self._fresh_days()
        if oldest > newest:  # full_resync: every record goes the whole way
            rest = waiting
        else:
            changed = tracker.cache.changed_as_read(keys, list(map(_AS_READ, waiting)), oldest, newest)
            rest = [entry for entry, key in zip(waiting, keys, strict=True) if key in changed] if changed else []
        unchanged = len(waiting) - len(rest)
        tracker.looked_up += unchanged
        tracker.skipped += unchanged
        tracker.skipped_as_read += unchanged
        tracker.lookup_cpu += time.thread_time() - started
        return rest

    def triage(self, ready: list[PendingInput]) -> Triaged:
        """Sort the `ready` (reserved) inputs: unchanged, changed, and those sent as without the cache.

        The last (archives, and objects created without a unique property) go out as usual; an
        archive's entry is deleted before the archive is sent. Each input looked up keeps its
        cache entry (`PendingInput.cache_entry`) for the worker that sends it.
        """
        started = time.thread_time()
        tracker = self.tracker
        cached_ids = [item for item in ready if item.id]
        hashes = self._hashes(cached_ids)
        writes = [key for item, (key, _) in zip(cached_ids, hashes, strict=True) if item.op == WRITE]
        found = tracker.cache.lookup(writes)
        oldest, newest = self._fresh_days()
        unchanged: list[PendingInput] = []
        changed: list[PendingInput] = []
        as_read: list[tuple[int, int, int, int | None]] = []
        for item, (key, digest) in zip(cached_ids, hashes, strict=True):
            cached = found.get(key)
            if item.op != WRITE:
                item.cache_entry = (key, None, True)
                continue  # an archive: sent on the usual path
            if cached is None:
                item.cache_entry = (key, digest, False)
            elif cached[0] != digest:
                item.cache_entry = (key, digest, True)  # deleted from the cache before this is sent
            elif oldest <= cached[1] <= newest:  # dated in the future: expired
                unchanged.append(item)
                if item.as_read is not None and item.as_read != cached[2]:
                    # The record as read converts to the value HubSpot holds: note it, so the next
                    # run finds it unchanged on the short path (the row keeps its day).
                    as_read.append((key, digest, cached[1], item.as_read))
                continue
            else:
                item.cache_entry = (key, digest, False)  # the same value, sent again to refresh it
            changed.append(item)
        if as_read and not tracker.read_only:
            tracker.note(as_read)
        tracker.looked_up += len(cached_ids)
        tracker.skipped += len(unchanged)
        tracker.lookup_cpu += time.thread_time() - started
        return Triaged(unchanged, changed, [item for item in ready if item.op != WRITE or not item.id])
