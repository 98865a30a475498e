"""Every use of singer-sdk internals, gathered in one place, each with the reason it is needed.

The target and sink subclass `AdaptedTarget` and `AdaptedSink`, which turn the SDK's private
hooks into named methods and expose the few private attributes the target reads. Nothing else
in the product touches a private SDK name. tests/test_sdk_adapter.py fails when an SDK release
renames or removes any of them, so a version bump shows at once what to revisit.
"""

from __future__ import annotations

import typing as t
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit
from urllib.request import url2pathname

# The SDK's reader of BATCH manifests, and the encoding its sinks take (no public name for either).
from singer_sdk.helpers._batch import BaseBatchFileEncoding, StorageTarget
from singer_sdk.io_base import SingerReader
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

#: The private SDK names this module relies on, checked by tests/test_sdk_adapter.py.
TARGET_HOOKS = (
    "_process_record_message",  # the record path: no public hook runs before the sink is chosen
    "_process_state_message",  # STATE: the SDK writes it at the next full drain, not per batch
    "_process_batch_message",  # BATCH: the SDK indexes its maps by a stream that may have no SCHEMA
    "_process_activate_version_message",  # the same for ACTIVATE_VERSION
    "_handle_termination",  # SIGTERM/SIGINT: the SDK writes STATE without waiting for batches
    "_validate_config",  # one message listing schema errors and cross-field checks together
    "_assert_sink_exists",  # registers a stream's maps and sink on its first record
    "_handle_max_record_age",  # the SDK's periodic drain when records wait too long
    "_sinks_active",
    "_sinks_to_clear",
    "_config",
    "_env_var_prefix",
)
SINK_HOOKS = ("_add_sdc_metadata_to_record", "_record_counter", "_validator")
READER_HOOKS = ("_process_unknown_message",)


class AdaptedReader(SingerReader):
    """The SDK's Singer reader, with unknown message types handed to `on_unknown`."""

    def _process_unknown_message(self, message_dict: dict) -> None:
        self.on_unknown(message_dict)

    def on_unknown(self, message_dict: dict) -> None:
        """A message of a type the reader has no callback for."""
        raise NotImplementedError


class AdaptedTarget(Target):
    """The SDK's Target with its private hooks as named methods."""

    # --- listen: the SDK marks it final; the one override of a final method, and why --------

    def listen(self, file_input: t.IO[str] | None = None) -> None:  # type: ignore[misc]
        """Read input through `before_listen`, and hand any failure to `stop_after` before it propagates.

        `listen` is marked final in the SDK, but it is the only place that sees every way a run can
        end (bad input, a signal, a failed batch, the rejection limit) while the input is still open;
        checkpointing up to what landed needs that. The override only wraps the SDK's own `listen`.
        """
        self.before_listen(file_input if file_input is not None else self.message_reader.default_input)
        try:
            super().listen(file_input)  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - every way a run ends goes through stop_after
            raise self.stop_after(exc) from None
        finally:
            self.after_listen()

    def before_listen(self, source: t.IO[str]) -> None:
        """Prepare to read `source` (stdin or the `--input` file)."""

    def after_listen(self) -> None:
        """The input is read and the run has ended, whichever way."""

    def stop_after(self, exc: BaseException) -> BaseException:
        """Stop the run cleanly after `exc`; return the error to raise in its place."""
        return exc

    # --- hooks: the SDK calls these private names; subclasses implement the public ones ---

    def _process_record_message(self, message_dict: dict) -> None:
        # The SDK's record path copies every record, parses timestamps and checks record age
        # per record; the target does that work per stream or per 1,024 records instead.
        self.handle_record(message_dict)

    def _process_state_message(self, message_dict: dict) -> None:
        self.handle_state(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        self.handle_batch(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.handle_activate_version(message_dict)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.handle_signal(signum)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        return self.check_config(raise_errors=raise_errors)

    def handle_record(self, message_dict: dict) -> None:
        """A RECORD message."""
        raise NotImplementedError

    def handle_state(self, message_dict: dict) -> None:
        """A STATE message."""
        raise NotImplementedError

    def handle_signal(self, signum: int) -> None:
        """SIGTERM or SIGINT arrived."""
        raise NotImplementedError

    def handle_batch(self, message_dict: dict) -> None:
        """A BATCH message; by default the SDK's handling."""
        super()._process_batch_message(message_dict)

    def handle_activate_version(self, message_dict: dict) -> None:
        """An ACTIVATE_VERSION message; by default the SDK's handling."""
        super()._process_activate_version_message(message_dict)

    def check_config(self, *, raise_errors: bool = True) -> list[str]:
        """Validate the config; by default what the SDK checks (the JSON schema)."""
        return super()._validate_config(raise_errors=raise_errors)

    # --- what the target reads of the SDK's state -----------------------------------------

    @classmethod
    def env_var_prefix(cls) -> str:
        """`TARGET_HUBSPOT_UPSERT_`: the prefix the SDK reads settings from."""
        return cls._env_var_prefix  # type: ignore[no-any-return]

    @property
    def raw_config(self) -> dict[str, t.Any]:
        """The config before validation, to coerce values the SDK left as text."""
        return self._config  # type: ignore[no-any-return]

    def active_sink(self, alias: str) -> Sink | None:
        """The sink taking records for `alias` now, if any."""
        return self._sinks_active.get(alias)

    def all_sinks(self) -> list[Sink]:
        """Sinks replaced by a new SCHEMA and not yet cleaned up, then the active ones."""
        return [*self._sinks_to_clear, *self._sinks_active.values()]

    def require_sink(self, alias: str) -> None:
        """Raise the SDK's error for a record without a SCHEMA (registers maps otherwise)."""
        self._assert_sink_exists(alias)

    def check_record_age(self) -> None:
        """Drain sinks whose records have waited longer than the SDK allows."""
        self._handle_max_record_age()


class AdaptedSink(Sink):
    """The SDK's Sink with the private parts the target uses exposed by name."""

    def add_sdc_metadata(self, record: dict, message_dict: dict) -> None:
        """Add the `_sdc_*` columns (`add_record_metadata`), as the SDK's record path would."""
        self._add_sdc_metadata_to_record(record, message_dict, {})

    def count_records(self, n: int) -> None:
        """Advance the SDK's `record_count` metric by `n`."""
        self._record_counter.increment(n)

    @property
    def validator(self) -> BaseJSONSchemaValidator | None:
        """The validator the SDK built from `get_validator()` (None when validation is off)."""
        return self._validator


def failed_map_field(exc: BaseException) -> str | None:
    """The output field whose `stream_maps` expression raised `exc`, if the traceback tells.

    The SDK's record transform evaluates one field at a time in `transform_fn`, its loop variable
    `prop_key` naming the field; its exceptions do not name it (tests/test_messages.py checks this).
    """
    tb = exc.__traceback__
    field = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "transform_fn":
            value = tb.tb_frame.f_locals.get("prop_key")
            field = value if isinstance(value, str) else field
        tb = tb.tb_next
    return field


def batch_encoding(file_format: str, compression: str | None) -> BaseBatchFileEncoding:
    """The encoding of a BATCH message, as the SDK's sinks take it."""
    return BaseBatchFileEncoding(file_format, compression)


def open_batch_file(path: str, storage: StorageTarget | None) -> t.IO[bytes]:
    """Open a file a BATCH message names, through the SDK's storage layer (local or remote).

    A local file without a configured storage is opened directly: the storage layer creates the
    folder of a file it is asked to open, so a wrong path would leave folders behind.
    """
    scheme = urlsplit(path).scheme
    if storage is None and (len(scheme) <= 1 or scheme == "file"):  # no scheme, a drive letter, file://
        return Path(url2pathname(urlsplit(path).path) if scheme == "file" else path).open("rb")
    head, tail = StorageTarget.split_url(path)
    file_storage = storage or StorageTarget.from_url(head)
    return t.cast("t.IO[bytes]", file_storage.open(tail, mode="rb"))
