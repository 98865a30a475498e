"""The Singer target: routes each message to its sink or the runtime; its settings are in `config.py`."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import gc
import logging
import os
import signal
import sys
import typing as t
from pathlib import Path

import click
from singer_sdk.exceptions import (
    InvalidInputLine,
    InvalidRecord,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    TargetCapabilities,
)
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from target_hubspot_upsert.core.errors import (
    HubSpotConfigError,
    InputError,
    Interrupted,
)
from target_hubspot_upsert.core.redact import REDACTOR
from target_hubspot_upsert.core.settings import SECRET_SETTINGS
from target_hubspot_upsert.pipeline.checkpoints import state_json
from target_hubspot_upsert.pipeline.runtime import Runtime
from target_hubspot_upsert.singer.config import (
    CONFIG_SCHEMA,
    UNLISTED_SETTINGS,
    config_problems,
    env_problems,
    schema_types,
    unknown_env_warnings,
    unknown_settings_warning,
)
from target_hubspot_upsert.singer.messages import (
    LineCountingReader,
    OversizedLine,
    RawTaker,
    RecordTaker,
    fraction_read,
    oversized_error,
    read_as_utf8,
)
from target_hubspot_upsert.singer.sdk_adapter import AdaptedTarget, batch_encoding
from target_hubspot_upsert.singer.sinks import HubSpotSink

logger = logging.getLogger("target_hubspot_upsert")
#: Allocations between collections of the garbage collector's youngest generation while input is
#: read (Python's default: 700). See `before_listen`.
GC_YOUNG_THRESHOLD = 20_000
#: How a stream's records reach a sink: (whether the map is the identity, the map, the sink's alias).
Route = tuple[bool, t.Any, str]


#: The settings the command-line flags give this invocation (`--check`: dry_run, `--full-resync`:
#: full_resync), on top of the config; empty when the target is built without the command line.
FLAG_SETTINGS: contextvars.ContextVar[dict[str, bool]] = contextvars.ContextVar("flag_settings", default={})  # noqa: B039 - never mutated


def _with_flags_as_settings(
    invoke: t.Callable[..., t.Any], *, check: bool = False, full_resync: bool = False,
    **kwargs: t.Any,  # noqa: ANN401 - the SDK's command parameters
) -> t.Any:  # noqa: ANN401 - the SDK's command callback
    """Run the SDK's command with the flags turned into settings for this invocation.

    `--check` without piped input (a terminal, or no stdin) checks the settings only: it reads an
    empty input instead of waiting for one.
    """
    settings = {name: True for name, on in (("dry_run", check), ("full_resync", full_resync)) if on}
    with contextlib.ExitStack() as stack:
        if check and kwargs.get("file_input") is None and (sys.stdin is None or sys.stdin.isatty()):
            kwargs["file_input"] = stack.enter_context(Path(os.devnull).open(encoding="utf-8"))
        token = FLAG_SETTINGS.set(settings)
        try:
            return invoke(**kwargs)
        finally:
            FLAG_SETTINGS.reset(token)


class TargetHubSpotUpsert(AdaptedTarget):
    """Upserts Singer streams into HubSpot CRM objects through the batch upsert API."""

    name = "target-hubspot-upsert"
    default_sink_class = HubSpotSink
    message_reader_class = LineCountingReader
    #: `hard-delete`: records with `_sdc_deleted_at` archive their objects when `hard_delete` is on.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*AdaptedTarget.capabilities, TargetCapabilities.HARD_DELETE]

    config_jsonschema = CONFIG_SCHEMA

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command line, with the flags this target adds, so `--help` lists every flag.

        `--check` and `--full-resync` are taken off the command line before it is parsed (cli.py);
        they are declared here to be listed.
        """
        command = super().get_singer_command()
        # One line per flag, also when the terminal is narrow or stdout is not a terminal.
        command.context_settings.update(terminal_width=120, max_content_width=120)
        command.help = (
            "Load Singer RECORDs from stdin (or --input) into HubSpot CRM objects; "
            "STATE lines go to stdout once HubSpot acknowledged the records before them."
        )
        command.params.extend([
            click.Option(
                ["--check"], is_flag=True,
                help="Dry run: check settings, credentials and piped input; write nothing to HubSpot.",
            ),
            click.Option(
                ["--full-resync"], is_flag=True,
                help="With skip_unchanged: send every record this run and refresh the change cache.",
            ),
        ])
        if command.callback is not None:
            command.callback = functools.partial(_with_flags_as_settings, command.callback)
        return command

    def __init__(
        self,
        *args: t.Any,  # noqa: ANN401
        sleep: t.Callable[[float], None] | None = None,
        clock: t.Callable[[], float] | None = None,
        **kwargs: t.Any,  # noqa: ANN401
    ) -> None:
        """Validate the config, then build the runtime every sink shares.

        `sleep`/`clock` replace real waiting in tests (backoffs, the rate-limit window).
        """
        for warning in unknown_env_warnings(os.environ, self.env_var_prefix(), self._known_settings()):
            logger.warning("%s", warning)
        if kwargs.get("parse_env_config") and (problems := env_problems(self._full_schema(), self.env_var_prefix())):
            raise HubSpotConfigError("Config validation failed", errors=problems)
        super().__init__(*args, **kwargs)
        self._routes: dict[str, list[Route]] = {}
        self.max_parallelism = 1  # batches are concurrent in the dispatcher, not per sink
        runtime_kwargs: dict[str, t.Any] = {}
        if sleep is not None:
            runtime_kwargs["sleep"] = sleep
        if clock is not None:
            runtime_kwargs["clock"] = clock
        config = {**self.config, **FLAG_SETTINGS.get()}  # `--check` and `--full-resync`, as settings
        self.runtime = Runtime.from_config(config, self.config_jsonschema, **runtime_kwargs)
        if isinstance(self.message_reader, LineCountingReader):
            self.message_reader.on_oversized = self._handle_oversized
            self.message_reader.record_taker = self._record_taker
            self.message_reader.every_records = self.check_record_age
            if self.runtime.changes is not None:
                self.message_reader.raw_taker = self._raw_taker

    def _handle_oversized(self, line: OversizedLine) -> None:
        """A RECORD line over the cap is a rejected record of its stream; any other is an input error."""
        stream = line.record_stream()
        routes = self._known_routes(stream) if stream is not None else None
        if not routes:
            raise oversized_error(self.current_line, line)
        self._sink_for(routes[0][2], {}).reject_oversized(line)

    @classmethod
    def _full_schema(cls) -> dict[str, t.Any]:
        """This target's settings schema with the SDK's built-ins (a copy)."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return schema

    @classmethod
    def _known_settings(cls) -> list[str]:
        """Every setting `--about` lists: this target's schema and the SDK's built-ins."""
        return list(cls._full_schema()["properties"])

    @property
    def current_line(self) -> int:
        """Input line being processed."""
        return getattr(self.message_reader, "line_number", 0)

    @override
    def check_config(self, *, raise_errors: bool = True) -> list[str]:
        """One message listing every problem: schema errors and cross-field checks together."""
        for key in SECRET_SETTINGS:
            REDACTOR.add(self.config.get(key))
        # The SDK passes number settings from environment variables through as text.
        for key, schema in self.config_jsonschema["properties"].items():
            value = self.raw_config.get(key)
            if isinstance(value, str) and "number" in schema_types(schema):
                with contextlib.suppress(ValueError):  # a bad value is reported by the schema check
                    self.raw_config[key] = float(value)
        if warning := unknown_settings_warning(self.raw_config, [*self._known_settings(), *UNLISTED_SETTINGS]):
            logger.warning("%s", warning)
        errors = super().check_config(raise_errors=False)
        errors = [REDACTOR.redact(e) for e in errors]
        own = config_problems(self.config)
        # A setting this target checks itself gets its message only, not the schema's as well.
        errors = [e for e in errors if not any(e.endswith(f"in config['{p.split(' ', 1)[0]}']") for p in own)]
        errors = [*errors, *own]
        if errors and raise_errors:
            raise HubSpotConfigError("Config validation failed", errors=errors)
        return errors

    # --- messages -----------------------------------------------------------------------

    @override
    def handle_record(self, message_dict: dict) -> None:
        """The SDK's per-record path (maps, SDC columns, validation, counters), leaner.

        No copy for identity maps (records are never mutated here), no timestamp parsing (the
        serializer does it by property type), the max-age check every 1,024 records (by the reader,
        `every_records`, for every RECORD whichever way it went).
        """
        stream_name = message_dict.get("stream")
        record = message_dict.get("record")
        if not isinstance(stream_name, str) or not isinstance(record, dict):
            # Not the SDK's check of required keys: its message quotes the whole line, values and all.
            which = (
                f"the RECORD message of stream {stream_name!r}" if isinstance(stream_name, str) else "a RECORD message"
            )
            msg = f"Input line {self.current_line}: {which} needs a stream name and a record object."
            raise InputError(msg)
        routes = self._routes.get(stream_name)
        if routes is None:
            routes = self._route(stream_name)
        for identity, stream_map, alias in routes:
            if identity:
                transformed = record
            else:
                try:
                    transformed = stream_map.transform(copy.copy(record))
                except Exception as exc:  # noqa: BLE001 - a user's expression failed on this record
                    self._sink_for(alias, record).reject_unmapped(record, exc)
                    continue
                if transformed is None:
                    continue  # filtered out by the map
            sink = self._sink_for(alias, transformed)
            if sink.sdc_metadata:
                sink.add_sdc_metadata(transformed, message_dict)
            sink.accept(transformed)
            if sink.buffer.is_full:
                self.drain_one(sink)

    def _raw_taker(self, stream_name: str) -> RawTaker | None:
        """skip_unchanged: what takes a RECORD of `stream_name` as raw record text (its short path), or None.

        Only a stream read as it is (`_plain_sink`) whose sink has a short path; asked again after
        every SCHEMA.
        """
        sink = self._plain_sink(stream_name)
        return None if sink is None or sink.as_read is None or not sink.as_read.takes_raw else sink.as_read.offer_raw

    def _record_taker(self, stream_name: str) -> RecordTaker | None:
        """What takes a RECORD's record of `stream_name` straight to its sink, or None.

        `handle_record` without the maps, SDC columns and routing a stream read as it is does not
        need; asked again after every SCHEMA.
        """
        sink = self._plain_sink(stream_name)
        if sink is None:
            return None
        # Without skip_unchanged's short path, `accept` only calls `accept_whole`: one call fewer per record.
        accept = sink.accept if sink.as_read is not None else sink.accept_whole
        buffer, drain = sink.buffer, self.drain_one

        def take(record: dict[str, t.Any]) -> None:
            accept(record)
            if buffer.is_full:
                drain(sink)

        return take

    def _plain_sink(self, stream_name: str) -> HubSpotSink | None:
        """The open sink of a stream read as it is (one identity map, no SDC columns added), else None."""
        routes = self._known_routes(stream_name)
        if not routes or len(routes) != 1 or not routes[0][0]:
            return None
        sink = t.cast("HubSpotSink | None", self.active_sink(routes[0][2]))
        return None if sink is None or sink.sdc_metadata else sink

    def _sink_for(self, alias: str, record: dict) -> HubSpotSink:
        sink = t.cast("HubSpotSink | None", self.active_sink(alias))
        if sink is None:
            self.require_sink(alias)
            sink = t.cast("HubSpotSink", self.get_sink(alias, record=record))
        return sink

    def _known_routes(self, stream_name: str) -> list[Route] | None:
        """A stream's routes when its maps are registered (it had a SCHEMA), else None; nothing raised."""
        routes = self._routes.get(stream_name)
        if routes is None and stream_name in self.mapper.stream_maps:
            routes = self._route(stream_name)
        return routes

    def _route(self, stream_name: str) -> list[Route]:
        """Per stream, once: its maps, whether each is the identity, and the sink alias."""
        stream_maps = self.mapper.stream_maps.get(stream_name)
        if stream_maps is None:
            self.require_sink(stream_name)
            stream_maps = self.mapper.stream_maps[stream_name]
        routes = [
            (type(m) is SameRecordTransform and not m.flattening_enabled, m, m.stream_alias)
            for m in stream_maps
        ]
        self._routes[stream_name] = routes
        return routes

    @override
    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> HubSpotSink:
        """A changed SCHEMA replaces the sink: the old one sends all it holds first."""
        if schema is not None:
            self._routes.clear()  # the SDK has registered the stream's maps again
            if isinstance(self.message_reader, LineCountingReader):
                self.message_reader.forget_takers()  # and the stream gets a new sink
            existing = t.cast("HubSpotSink | None", self.active_sink(stream_name))
            if existing is not None and (
                existing.original_schema != schema or existing.key_properties != key_properties
            ):
                existing.retire()
        return t.cast(
            "HubSpotSink",
            super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties),
        )

    @override
    def handle_state(self, message_dict: dict) -> None:
        """Held by the ledger until every record received before it has an outcome."""
        if "value" not in message_dict:  # the reader checks it; this method is public
            msg = f"Input line {self.current_line}: a STATE message needs a 'value'."
            raise InputError(msg)
        try:  # checked now, on its line: it is written later, maybe from a worker thread
            state_json(message_dict["value"])
        except (ValueError, TypeError, RecursionError):
            msg = (
                f"Input line {self.current_line}: the STATE value cannot be written back as JSON "
                "(it holds NaN or Infinity, or nests too deeply); fix the tap's state."
            )
            raise InputError(msg) from None
        self.runtime.check()
        self.runtime.add_state(message_dict["value"], self.current_line)

    @override
    def handle_batch(self, message_dict: dict) -> None:
        """A BATCH message: its files' records go through each of the stream's sinks.

        Its shape was checked by the reader; a stream without a SCHEMA is an input error.
        """
        stream_name = message_dict["stream"]
        self.require_sink(stream_name)
        encoding = batch_encoding(message_dict["encoding"]["format"], message_dict["encoding"].get("compression"))
        for stream_map in self.mapper.stream_maps[stream_name]:
            sink = t.cast("HubSpotSink", self.get_sink(stream_map.stream_alias))
            sink.process_batch_files(encoding, message_dict["manifest"])
            self.check_record_age()

    @override
    def handle_activate_version(self, message_dict: dict) -> None:
        """The SDK's handling (a warning: HubSpot has no table versions), once the stream has a SCHEMA."""
        self.require_sink(message_dict["stream"])  # its shape was checked by the reader
        super().handle_activate_version(message_dict)

    @override
    def handle_signal(self, signum: int) -> None:
        """Unwind the main thread when the run must stop; `listen` then lets in-flight batches land."""
        name = signal.Signals(signum).name
        if self.runtime.on_signal(name):
            msg = f"Received {name}: stopped reading input."
            raise Interrupted(msg, signum)

    @override
    def before_listen(self, source: t.IO[str]) -> None:
        """Read input as UTF-8 (bad bytes become values to reject), and watch how much is read.

        Everything made so far (modules, the SDK, the settings) lives as long as the run: moved out
        of the garbage collector's sight (`gc.freeze`), so its collections, which the records'
        short-lived objects set off, no longer walk it (about a twentieth of a re-sync's CPU).
        The youngest generation is collected every `GC_YOUNG_THRESHOLD` allocations, not 700:
        most of a record's objects are gone by then instead of walked while it waits in a
        buffer (about 4% of a realistic record's CPU); garbage in reference cycles waits a little
        longer for its collection.
        """
        read_as_utf8(source)
        self.runtime.report.watch_input(fraction_read(source))
        gc.freeze()
        self._gc_thresholds = gc.get_threshold()  # `after_listen` restores them
        gc.set_threshold(GC_YOUNG_THRESHOLD, *self._gc_thresholds[1:])

    @override
    def after_listen(self) -> None:
        """The collector as it was before `before_listen` (a process may run more than one target)."""
        gc.unfreeze()
        gc.set_threshold(*self._gc_thresholds)

    @override
    def stop_after(self, exc: BaseException) -> BaseException:
        """Whatever ended the run: checkpoints up to what landed, summary, report; a clear error."""
        self.abort(exc)
        return self._explain(exc)

    def _explain(self, exc: BaseException) -> BaseException:
        line = self.current_line
        if isinstance(exc, RecordsWithoutSchemaException):
            return InputError(f"Input line {line}: {exc} Send the stream's SCHEMA message first.")
        if isinstance(exc, InvalidInputLine | MissingKeyPropertiesError | InvalidRecord):
            return InputError(f"Input line {line}: {exc}")
        return exc

    def process_endofpipe(self) -> None:
        """Flush every buffer (the SDK's last drain), then let the runtime finish the run."""
        self.runtime.input_read()
        super().process_endofpipe()
        self.runtime.finish()

    def abort(self, exc: BaseException) -> None:
        """Stop the run cleanly after `exc`: checkpoints up to what landed, summary and report."""
        self.runtime.abort(exc, str(self._explain(exc)))
