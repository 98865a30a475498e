"""State shared by every sink of one run: client, dispatcher, checkpoints, catalogues, counters."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from singer_sdk import metrics

from target_hubspot_upsert.auth import OAuthTokenProvider, StaticToken, TokenProvider
from target_hubspot_upsert.checkpoints import CheckpointLedger, write_state_line
from target_hubspot_upsert.client import HubSpotClient, RequestTally
from target_hubspot_upsert.dispatch import Dispatcher
from target_hubspot_upsert.errors import HubSpotConfigError, HubSpotFatalError, brief
from target_hubspot_upsert.mapping import ObjectTarget
from target_hubspot_upsert.model import Batch, BatchOutcome, Rejection
from target_hubspot_upsert.ratelimit import RateLimiter
from target_hubspot_upsert.redact import REDACTOR
from target_hubspot_upsert.redact import install as install_redactor
from target_hubspot_upsert.rejects import RejectionLog
from target_hubspot_upsert.serialization import (
    PropertySpec,
    StreamPlan,
    build_plan,
    derive_property_definition,
)
from target_hubspot_upsert.transport import Transport
from target_hubspot_upsert.writer import BatchWriter

logger = logging.getLogger("target_hubspot_upsert")
HUBSPOT_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PROGRESS_INTERVAL_S = 30.0
SECRET_SETTINGS = ("access_token", "client_secret", "refresh_token")
FIRST_ERRORS_KEPT = 5


@dataclass
class StreamStats:
    """Per-stream counters; `received` is the sum of the four outcomes at the end."""

    stream: str
    object_type: str
    received: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    rejected: int = 0
    tally: RequestTally = field(default_factory=RequestTally)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_errors: list[str] = field(default_factory=list)
    last_progress: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        """Records with an outcome."""
        return self.created + self.updated + self.merged + self.rejected

    def summary_line(self) -> str:
        """The end-of-run line for this stream; on a stopped run, what has no confirmed outcome."""
        unsent = self.received - self.done
        return (
            f"Stream '{self.stream}' -> {self.object_type}: received {self.received}, "
            f"created {self.created}, updated {self.updated}, merged {self.merged}, "
            f"rejected {self.rejected}"
            + (f", unconfirmed (run stopped) {unsent}" if unsent else "")
            + f"; requests {self.tally.requests}, retries {self.tally.retries}, "
            f"429s {self.tally.rate_limited}"
        )

    def report(self) -> dict[str, Any]:
        """This stream's part of the run report."""
        end = self.finished or time.monotonic()
        return {
            "object_type": self.object_type,
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "merged": self.merged,
            "rejected": self.rejected,
            "unconfirmed": self.received - self.done,
            "requests": self.tally.requests,
            "retries": self.tally.retries,
            "rate_limited_429s": self.tally.rate_limited,
            "duration_seconds": round(end - self.started, 3),
            "first_errors": list(self.first_errors),
        }


def make_token_provider(
    config: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep, transport: Transport | None = None,
) -> TokenProvider:
    """The token provider the (already validated) config asks for; OAuth shares `transport`."""
    if config.get("access_token"):
        return StaticToken(config["access_token"])
    base = str(config.get("api_base_url") or "https://api.hubapi.com").rstrip("/")
    return OAuthTokenProvider(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        refresh_token=config["refresh_token"],
        token_url=config.get("oauth_token_url") or f"{base}/oauth/v1/token",
        timeout=float(config.get("request_timeout") or 60),
        max_retries=int(config.get("max_retries", 8)),
        sleep=sleep,
        transport=transport,
    )


class Runtime:
    """Everything one run shares across streams and threads."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        write_state: Callable[[Any], None] = write_state_line,
    ) -> None:
        """Build the client, limiter, dispatcher and ledger from the config.

        `sleep` and `clock` are injectable so tests never wait for backoffs or the window.
        """
        self.config = config
        # Waiting (backoffs, the rate-limit window) ends early when the run is stopping.
        self.stopping = threading.Event()
        # Set when the run begins to stop (begin_stop): waits that would end after the
        # deadline fail at once instead.
        self.wait_deadline: float | None = None
        self.draining = threading.Event()
        sleep = sleep or self._sleep
        for key in SECRET_SETTINGS:
            REDACTOR.add(config.get(key))
        install_redactor()
        self.limiter = RateLimiter(
            int(config.get("max_requests_per_10_seconds") or 100), sleep=sleep, clock=clock
        )
        # One transport (connection pools, deadlines, size cap) for API and OAuth token requests.
        self.transport = Transport(
            timeout=float(config.get("request_timeout") or 60),
            pool_size=int(config.get("max_concurrent_requests") or 8) + 2,
        )
        self.client = HubSpotClient(
            str(config.get("api_base_url") or "https://api.hubapi.com"),
            make_token_provider(config, sleep, self.transport),
            limiter=self.limiter,
            max_retries=int(config.get("max_retries", 8)),
            api_version=str(config.get("api_version") or "v3"),
            sleep=sleep,
            transport=self.transport,
        )
        self.writer = BatchWriter(self.client)
        self.ledger = CheckpointLedger(write_state)
        self.rejects = RejectionLog(
            config.get("rejected_records_path"), int(config.get("max_rejected_records") or 0)
        )
        self.dispatcher = Dispatcher(
            self._write,
            self._on_outcome,
            self.ledger,
            max_concurrent=int(config.get("max_concurrent_requests") or 8),
        )
        self.stats: dict[str, StreamStats] = {}
        self._catalogs: dict[str, dict[str, PropertySpec]] = {}
        self._groups_checked: set[str] = set()
        self._warned: set[tuple[str, str, str]] = set()
        self.seq = 0
        self.started = time.monotonic()
        self.finished = False

    def _sleep(self, seconds: float) -> None:
        """Wait; once the run stops, a wait that would outlast the grace period fails at once."""
        end = time.monotonic() + seconds
        if not self.draining.wait(seconds):
            return
        deadline = self.wait_deadline
        if deadline is not None and end <= deadline and not self.stopping.wait(max(0.0, end - time.monotonic())):
            return
        msg = "The run is stopping; not waiting to retry."
        raise HubSpotFatalError(msg)

    def begin_stop(self, grace_s: float) -> None:
        """The run is stopping: waits that would outlast `grace_s` end now, with a failure."""
        self.wait_deadline = time.monotonic() + grace_s
        self.draining.set()

    # --- records ------------------------------------------------------------------------

    def stream_stats(self, stream: str, object_type: str) -> StreamStats:
        """Counters of a stream (kept across schema changes)."""
        stats = self.stats.get(stream)
        if stats is None:
            stats = self.stats[stream] = StreamStats(stream, object_type)
        return stats

    def reject(self, stats: StreamStats, rejection: Rejection) -> None:
        """Count and report one rejected record."""
        with stats.lock:
            stats.rejected += 1
            if len(stats.first_errors) < FIRST_ERRORS_KEPT:
                stats.first_errors.append(
                    f"{rejection.id or '#' + str(rejection.position)}: {rejection.code}: {rejection.message}"
                )
        self.rejects.add(rejection)

    def _write(self, batch: Batch) -> BatchOutcome:
        stats = self.stats[batch.stream]
        with metrics.Timer(
            metrics.Metric.BATCH_PROCESSING_TIME,
            {metrics.Tag.STREAM: batch.stream, "object_type": batch.target.object_type},
        ):
            return self.writer.write(batch, stats.tally)

    def _on_outcome(self, batch: Batch, outcome: BatchOutcome) -> None:
        stats = self.stats[batch.stream]
        with stats.lock:
            stats.created += outcome.created
            stats.updated += outcome.updated
            stats.merged += outcome.merged
        for item, category, code, message in outcome.rejected:
            latest = item.records[-1]
            for ref in item.records:  # records merged into the input were not written either
                note = "" if ref is latest else f" (merged with record #{latest.position} for the same id)"
                self.reject(
                    stats,
                    Rejection(
                        stream=batch.stream,
                        object_type=batch.target.object_type,
                        id=item.id,
                        position=ref.position,
                        record=ref.record,
                        category=category,
                        code=code,
                        message=message + note,
                    ),
                )

    def maybe_log_progress(self, stats: StreamStats, now: float) -> None:
        """A concise progress line at most every 30 s per stream."""
        if now - stats.last_progress < PROGRESS_INTERVAL_S:
            return
        stats.last_progress = now
        elapsed = max(now - stats.started, 1e-9)
        logger.info(
            "Progress '%s': %d records done of %d received (%.0f records/s), %d requests in "
            "flight, %d rejected so far.",
            stats.stream, stats.done, stats.received, stats.done / elapsed,
            self.dispatcher.in_flight, stats.rejected,
        )

    # --- catalogue and pre-flight ---------------------------------------------------------

    def catalog(self, target: ObjectTarget) -> dict[str, PropertySpec]:
        """The object's property catalogue, fetched once per object type per run."""
        key = target.canonical_type
        cached = self._catalogs.get(key)
        if cached is not None:
            return cached
        response = self.client.get_properties(target.object_type)
        if response.status != 200:
            message = brief(str(response.body.get("message") or "")) if isinstance(response.body, dict) else ""
            msg = (
                f"Could not read the properties of HubSpot object '{target.object_type}' "
                f"(stream '{target.stream}'): HTTP {response.status} {message}. Check "
                f"object_mappings.{target.stream}.object_type."
            )
            raise HubSpotConfigError(msg)
        results = response.body.get("results", []) if isinstance(response.body, dict) else []
        catalog = {
            str(p["name"]): PropertySpec.from_hubspot(p)
            for p in results
            if isinstance(p, dict) and p.get("name") and not p.get("archived")
        }
        self._catalogs[key] = catalog
        return catalog

    def _warn_once(self, object_type: str, prop: str, kind: str, message: str) -> None:
        key = (object_type, prop, kind)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def plan_for(self, target: ObjectTarget, schema: Mapping[str, Any]) -> StreamPlan:
        """Check a stream's fields against its object and compile its serializer."""
        properties: Mapping[str, Any] = schema.get("properties") or {}
        fields = list(properties)
        catalog = self.catalog(target)
        policy = self.config.get("unknown_properties") or "fail"
        clear_nulls = (self.config.get("null_values") or "skip") == "clear"
        id_property = target.id_property
        if id_property not in properties:
            msg = (
                f"Stream '{target.stream}' has no field '{id_property}', the id property it "
                f"upserts '{target.object_type}' by. Add the field, rename one with stream_maps, "
                f"or set object_mappings.{target.stream}.id_property."
            )
            raise HubSpotConfigError(msg)
        plan = build_plan(fields, catalog, id_property, clear_nulls=clear_nulls, stream=target.stream)
        if plan.unknown and policy == "create":
            self._create_properties(target, plan.unknown, properties, catalog)
            plan = build_plan(fields, catalog, id_property, clear_nulls=clear_nulls, stream=target.stream)
        id_spec = catalog.get(id_property)
        if id_spec is None:
            if id_property not in plan.unknown:
                plan.unknown.append(id_property)
        elif not id_spec.unique and not (target.canonical_type == "contacts" and id_property == "email"):
            msg = (
                f"HubSpot property '{id_property}' of '{target.object_type}' does not have unique "
                f"values, so HubSpot cannot upsert by it (stream '{target.stream}'). Set "
                f"object_mappings.{target.stream}.id_property to a unique property"
                + (" (contacts may also use email)." if target.canonical_type == "contacts" else ".")
            )
            raise HubSpotConfigError(msg)
        if plan.unknown:
            if policy == "fail" or id_property in plan.unknown:
                names = ", ".join(f"'{name}'" for name in plan.unknown)
                msg = (
                    f"Stream '{target.stream}' has field(s) {names} that are not properties of "
                    f"HubSpot object '{target.object_type}'; no record with them is sent. "
                    "Either map them to existing properties (or drop them) with stream_maps, set "
                    "unknown_properties to 'ignore' to leave them out, or set it to 'create' to "
                    "create them in HubSpot."
                )
                raise HubSpotConfigError(msg)
            for name in plan.unknown:
                self._warn_once(
                    target.canonical_type, name, "unknown",
                    f"Field '{name}' of stream '{target.stream}' is not a property of "
                    f"'{target.object_type}'; leaving it out (unknown_properties=ignore).",
                )
        for name in plan.read_only:
            self._warn_once(
                target.canonical_type, name, "read_only",
                f"Property '{name}' of '{target.object_type}' is read-only or calculated in "
                f"HubSpot; stream '{target.stream}' never sends it.",
            )
        return plan

    def _create_properties(
        self, target: ObjectTarget, names: list[str], schema_properties: Mapping[str, Any],
        catalog: dict[str, PropertySpec],
    ) -> None:
        group = str(self.config.get("property_group") or "target_hubspot_upsert")
        bad_names = [n for n in names if not HUBSPOT_PROPERTY_NAME.match(n)]
        if bad_names:
            msg = (
                f"Stream '{target.stream}' field(s) {', '.join(repr(n) for n in bad_names)} cannot "
                "become HubSpot property names (lowercase letters, digits and underscores, "
                "starting with a letter). Rename them with stream_maps."
            )
            raise HubSpotConfigError(msg)
        self._ensure_group(target, group)
        for name in names:
            definition = derive_property_definition(name, schema_properties.get(name) or {})
            definition["groupName"] = group
            if name == target.id_property:
                definition["hasUniqueValue"] = True
            response = self.client.create_property(target.object_type, definition)
            if response.status == 409:
                logger.info("Property '%s' of '%s' already exists.", name, target.object_type)
                created = {**definition}
            elif response.status in (200, 201):
                created = response.body if isinstance(response.body, dict) else definition
                logger.info(
                    "Created HubSpot property '%s' on '%s' (type %s, field type %s, group %s)%s.",
                    name, target.object_type, definition["type"], definition["fieldType"], group,
                    ", with unique values" if definition.get("hasUniqueValue") else "",
                )
            else:
                message = brief(str(response.body.get("message") or "")) if isinstance(response.body, dict) else ""
                msg = (
                    f"HubSpot refused to create property '{name}' on '{target.object_type}' "
                    f"(HTTP {response.status}): {message}"
                )
                raise HubSpotConfigError(msg)
            catalog[name] = PropertySpec.from_hubspot({**definition, **created})

    def _ensure_group(self, target: ObjectTarget, group: str) -> None:
        key = f"{target.canonical_type}/{group}"
        if key in self._groups_checked:
            return
        response = self.client.get_groups(target.object_type)
        names = set()
        if response.status == 200 and isinstance(response.body, dict):
            names = {g.get("name") for g in response.body.get("results") or [] if isinstance(g, dict)}
        if group not in names:
            created = self.client.create_group(target.object_type, group, "Target HubSpot Upsert")
            if created.status not in (200, 201, 409):
                message = created.body.get("message") if isinstance(created.body, dict) else ""
                msg = (
                    f"Could not create property group '{group}' on '{target.object_type}' "
                    f"(HTTP {created.status}): {message}. Set property_group to an existing group."
                )
                raise HubSpotConfigError(msg)
            logger.info("Created property group '%s' on '%s'.", group, target.object_type)
        self._groups_checked.add(key)

    # --- end of run -----------------------------------------------------------------------

    def log_summary(self, *, grouping: bool = True) -> None:
        """One line per stream, plus the rejection grouping (unless the error message has it)."""
        now = time.monotonic()
        unconfirmed = 0
        for stats in self.stats.values():
            stats.finished = stats.finished or now
            unconfirmed += stats.received - stats.done
            logger.info(stats.summary_line())
        if unconfirmed:
            logger.warning(
                "%d record(s) have no confirmed outcome: they were not sent, or HubSpot's answer "
                "never arrived. The last STATE written does not cover them, so the next run "
                "sends them again (upserts are idempotent).",
                unconfirmed,
            )
        if self.rejects.count and grouping:
            logger.warning(self.rejects.summary(limit_passed=False))

    def write_report(self, status: str, error: str | None = None) -> None:
        """Write the JSON run report when `run_report_path` is set."""
        path = self.config.get("run_report_path")
        if not path:
            return
        report = {
            "status": status,
            "error": REDACTOR.redact(error) if error else None,
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "streams": {name: stats.report() for name, stats in self.stats.items()},
            "rejected_total": self.rejects.count,
            "rejected_records_path": self.config.get("rejected_records_path"),
            "requests_total": self.client.totals.requests,
            "oauth_refreshes": getattr(self.client.auth, "refreshes", None),
        }
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            logger.error("Could not write the run report to %s (%s); check run_report_path.", path, exc)  # noqa: TRY400

    def close(self) -> None:
        """Release threads, files and metric counters."""
        self.stopping.set()
        self.draining.set()
        self.dispatcher.shutdown()
        self.client.close()
        self.rejects.close()
