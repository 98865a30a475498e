"""The public face of the simulator: :class:`HubSpotSimulator`, a local HubSpot CRM API over real HTTP.

It implements the object batch endpoints (upsert, read, update, create, archive) on the
``v3`` and date-versioned paths, associations v4 (create, associate/default, archive, read,
labels), the Properties API, account details, static-token and OAuth authentication and
rate limits, with HubSpot's validation rules and error bodies, plus fault injection
(scripted and random errors, dropped connections, partial writes) so clients can be tested
against the failures the real service produces. ``/_sim/...`` endpoints (see :mod:`.control`) let another process
inspect and steer it.

The server is independent of the target package on purpose: it models HubSpot, not the
client, so the client's assumptions cannot leak into it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from . import control, pipeline
from .catalog import build_object_type
from .faults import check_oauth_script, check_script
from .httpd import Server
from .options import FAULTS, OPTION_DEFAULTS, normalize_option, snapshot
from .requestlog import RequestLogEntry
from .responses import Response
from .rewrite import Rewrite
from .state import SimState

__all__ = ["FAULTS", "OPTION_DEFAULTS", "HubSpotSimulator", "RequestLogEntry"]


class HubSpotSimulator:
    """In-process HubSpot CRM API simulator serving real HTTP on 127.0.0.1.

    Every option (see :data:`OPTION_DEFAULTS`) can be given to the constructor and changed
    later with :meth:`configure`, from any thread.

    Example:
        >>> with HubSpotSimulator(tokens={"t"}, rate_limit_per_10s=100) as sim:
        ...     url = sim.base_url  # point the client here, with "Authorization: Bearer t"

    Args:
        tokens: Valid static bearer tokens (default ``{"sim-token"}``).
        host: Loopback address to bind.
        port: TCP port; 0 picks a free one.
        clock: Monotonic seconds, for the rate-limit window, OAuth token expiry and the
            request log's ``started``/``finished``. Tests pass a fake one to move time.
        sleep: Waits for added latency (``latency_ms``); a fake one makes latency free.
        tls: Serve https with this server context (a test certificate) instead of http.
        **options: Any other option of :data:`OPTION_DEFAULTS`.
    """

    def __init__(
        self,
        tokens: Iterable[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        tls: ssl.SSLContext | None = None,
        **options: Any,
    ) -> None:
        if not (host.startswith("127.") or host == "localhost"):
            raise ValueError(f"the simulator only binds to loopback addresses, not {host!r}")
        self._host = host
        self._port = port
        self._tls = tls
        self._state = SimState(clock, sleep)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        if tokens is not None:
            options["tokens"] = tokens
        self.configure(**options)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the socket and serve in a daemon thread.

        Returns:
            The simulator itself (so ``sim = HubSpotSimulator().start()`` works).
        """
        if self._server is not None:
            return self
        self._state.playing.stopping.clear()
        self._server = Server((self._host, self._port), self._handle_http, self._tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="hubspot-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._state.playing.stopping.set()  # hostile answers end now
        server.shutdown_now()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _running(self) -> Server:
        if self._server is None:
            raise RuntimeError("simulator is not running; call start() first")
        return self._server

    @property
    def port(self) -> int:
        """The bound TCP port (only available once started)."""
        return self._running().address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``) of the running server."""
        host, port = self._running().address
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no hostile answer is being played (each saw its client hang up, or ended).

        Returns:
            False if ``timeout`` seconds passed first.
        """
        return self._state.playing.wait_idle(timeout)

    # -- configuration ------------------------------------------------------------------

    def configure(self, **options: Any) -> None:
        """Change options at runtime (thread-safe; unknown names raise ``ValueError``).

        Args:
            **options: Options of :data:`OPTION_DEFAULTS`.
        """
        normalized = {name: normalize_option(name, value) for name, value in options.items()}
        state = self._state
        with state.lock:
            state.opts.update(normalized)
            if "search_index_lag_seconds" in normalized:
                with state.db.store_lock:
                    state.db.set_search_history(normalized["search_index_lag_seconds"] > 0)
            if "seed" in normalized:
                state.faults.rng.seed(normalized["seed"])

    @property
    def options(self) -> dict[str, Any]:
        """A JSON-friendly snapshot of the current options (sets become sorted lists)."""
        with self._state.lock:
            return snapshot(self._state.opts)

    def reset(self) -> None:
        """Clear objects, the request log, stats, scripted faults, validation rules and rate counters.

        The default object types and catalogues come back; options and issued tokens are kept.
        """
        self._state.reset()

    # -- test helpers --------------------------------------------------------------------

    def objects(self, object_type: str, archived: bool = False) -> list[dict[str, Any]]:
        """Return copies of the stored objects of a type, in creation order.

        Args:
            object_type: Name, type id or alias.
            archived: Return the archived objects (the recycle bin) instead of the live ones.

        Returns:
            ``[{"id", "properties", "createdAt", "updatedAt"}, ...]``.
        """
        db = self._state.db
        return db.objects(db.resolve_or_raise(object_type), archived)

    def associations(self, from_type: str, to_type: str | None = None) -> list[dict[str, Any]]:
        """Return the associations of a type's objects (each link appears from both of its ends).

        Args:
            from_type: Name, type id or alias.
            to_type: Only links to this type (name, type id or alias); None for every type.

        Returns:
            ``[{"fromId", "toObjectType", "toId", "types": [{"category", "typeId", "label"}]}]``.
        """
        db = self._state.db
        from_name = db.resolve_or_raise(from_type).name
        to_name = db.resolve_or_raise(to_type).name if to_type else None
        with db.store_lock, db.catalog_lock:
            links = db.links.of_type(from_name, to_name)
            return [
                {
                    "fromId": from_id,
                    "toObjectType": to,
                    "toId": to_id,
                    "types": [db.association_types.type_of(from_name, to, c, t).to_dict() for c, t in sorted(kinds)],
                }
                for from_id, to, to_id, kinds in links
            ]

    def add_association_label(
        self, from_type: str, to_type: str, label: str, inverse_label: str | None = None
    ) -> tuple[int, int]:
        """Define a USER_DEFINED association label between two object types.

        Args:
            from_type: Name, type id or alias.
            to_type: Name, type id or alias.
            label: The label from ``from_type`` to ``to_type``.
            inverse_label: The label the other way (default: the same).

        Returns:
            The type ids ``(from -> to, to -> from)``, as ``GET .../labels`` then lists them.
        """
        db = self._state.db
        names = (db.resolve_or_raise(from_type).name, db.resolve_or_raise(to_type).name)
        with db.catalog_lock:
            return db.association_types.add_label(*names, label, inverse_label)

    def find(self, object_type: str, property: str, value: str) -> dict[str, Any] | None:
        """Return a copy of the first stored object whose ``property`` equals ``value``.

        Email values are compared case-insensitively, others exactly.

        Args:
            object_type: Name, type id or alias.
            property: Property name.
            value: Value to look for.

        Returns:
            The object (as in :meth:`objects`) or None.
        """
        db = self._state.db
        return db.find(db.resolve_or_raise(object_type), property, value)

    @property
    def requests(self) -> list[RequestLogEntry]:
        """Every logged request in arrival order (a snapshot list of the live entries)."""
        with self._state.lock:
            return list(self._state.log)

    def upsert_requests(self, object_type: str | None = None) -> list[RequestLogEntry]:
        """Logged batch upsert requests, optionally only those of one object type.

        Args:
            object_type: Name, type id or alias; None for all types.

        Returns:
            The matching entries in arrival order.
        """
        name = self._state.db.resolve_or_raise(object_type).name if object_type else None
        return [
            e for e in self.requests if e.endpoint == "batch_upsert" and (name is None or e.object_type == name)
        ]

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        ``requests``, ``by_status`` (status -> count), ``upserts``, ``inputs_written``,
        ``rate_limited`` / ``rate_limited_ten_secondly`` / ``rate_limited_daily``, ``dropped``,
        ``faults_injected``, ``max_concurrent_upserts``, ``token_grants``, ``properties_created``.
        """
        with self._state.lock:
            out = dict(self._state.stats)
            out["by_status"] = dict(self._state.stats["by_status"])
            return out

    def script_faults(self, faults: Iterable[int | str | None]) -> None:
        """Replace the fault script: one item per upcoming object batch request, in order.

        Items: an HTTP status (``429`` = ten-secondly rate limit, ``423``, ``500``, ``502``,
        ``503``, ``504``...), ``"daily_429"``, ``"drop"`` (close the connection, write not
        applied), ``"drop_after_write"`` (apply the write, then close the connection),
        ``"empty_200"`` (200 with no results, nothing written) or None (behave normally).
        Scripted items take precedence over random faults.

        Args:
            faults: The script.
        """
        items = check_script(faults)
        with self._state.lock:
            self._state.faults.script.clear()
            self._state.faults.script.extend(items)

    def script_rewrites(self, endpoint: str, modes: Iterable[str | Rewrite | None]) -> None:
        """Replace the answer-rewrite script of one endpoint (``batch_upsert``, ``associations_default``...).

        Each upcoming request to that endpoint takes the next mode of :mod:`rewrite`
        (``duplicate_result``, ``extra_result``, ``anonymous_results``, ``half``, ``canceled``,
        ``pending``) or None (behave normally): answers that confirm less than was sent.

        Raises:
            ValueError: An unknown mode.
        """
        with self._state.lock:
            self._state.rewrites.script(endpoint, modes)

    def script_oauth_faults(self, faults: Iterable[int | None]) -> None:
        """Replace the token endpoint's fault script: one item per upcoming token request.

        Items: an HTTP status (answered with HubSpot's error body, no token issued) or None
        (behave normally).

        Args:
            faults: The script.
        """
        items = check_oauth_script(faults)
        with self._state.lock:
            self._state.faults.oauth_script.clear()
            self._state.faults.oauth_script.extend(items)

    def revoke_token(self, token: str) -> None:
        """Invalidate a static token, an issued OAuth access token or a refresh token.

        Args:
            token: The token; later requests with it get 401.
        """
        state = self._state
        with state.lock:
            state.opts["tokens"] = state.opts["tokens"] - {token}
            state.opts["refresh_tokens"] = state.opts["refresh_tokens"] - {token}
            state.tokens.revoke(token)

    def add_validation_rule(
        self,
        object_type: str,
        property: str,
        value: str,
        message: str = "This value is not allowed by a validation rule.",
    ) -> None:
        """Add an admin validation rule: inputs setting ``property`` to ``value`` are rejected.

        Rejections use code ``VALIDATION_RULE_VIOLATION`` and are answered per
        ``validation_error_mode``, like any invalid value.

        Args:
            object_type: Name, type id or alias.
            property: Property name.
            value: Forbidden value (exact match).
            message: Message reported to the client.
        """
        db = self._state.db
        ot = db.resolve_or_raise(object_type)
        with db.catalog_lock:
            db.rules.setdefault(ot.name, []).append((property, value, message))

    def add_object_type(
        self,
        name: str,
        type_id: str,
        properties: Iterable[Mapping[str, Any]],
        aliases: Iterable[str] = (),
    ) -> None:
        """Define an object type at runtime (e.g. another custom object).

        Args:
            name: Canonical name.
            type_id: Object type id (``2-<n>`` for a custom object, which also gets ``p_<name>``).
            properties: Property definitions: full HubSpot dicts or partial ones with at
                least ``name`` (``type``, ``fieldType``, ``options``, ``hasUniqueValue``...).
            aliases: Extra names.
        """
        spec = build_object_type(name, type_id, [dict(p) for p in properties], aliases=aliases)
        db = self._state.db
        with db.catalog_lock:
            db.register_type(spec)

    def consume_rate_limit(self, n: int) -> None:
        """Record ``n`` phantom requests (another app of the same account) in the window and daily count.

        Args:
            n: Number of requests to record.
        """
        with self._state.lock:
            self._state.limiter.consume(n)

    # -- HTTP entry point ----------------------------------------------------------------

    def _handle_http(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        split = urlsplit(raw_path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path.startswith("/_sim/") or path == "/_sim":
            return control.handle(self, method, path, query, body)
        return pipeline.handle(self._state, method, path, query, headers, body)
