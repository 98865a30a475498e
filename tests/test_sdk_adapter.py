"""The private singer-sdk names the adapter relies on still exist and still do what it needs."""

from __future__ import annotations

import inspect
import logging

from singer_sdk.io_base import SingerReader
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_hubspot_upsert.singer import sdk_adapter
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .helpers import contact, record, run_in_process, schema, state


def test_every_private_sdk_name_the_adapter_uses_exists(sim, config):
    target = TargetHubSpotUpsert(config=config)
    for name in sdk_adapter.TARGET_HOOKS:
        assert hasattr(Target, name) or hasattr(target, name), f"singer-sdk Target lost {name}"
    for name in sdk_adapter.READER_HOOKS:
        assert hasattr(SingerReader, name), f"singer-sdk SingerReader lost {name}"
    sink = target.get_sink("contacts", schema=schema("contacts")["schema"], key_properties=["email"])
    for name in sdk_adapter.SINK_HOOKS:
        assert hasattr(Sink, name) or hasattr(sink, name), f"singer-sdk Sink lost {name}"
    target.runtime.close()


def test_the_private_hooks_keep_the_signatures_the_adapter_calls():
    assert list(inspect.signature(Target._process_record_message).parameters) == ["self", "message_dict"]
    assert list(inspect.signature(Target._process_state_message).parameters) == ["self", "message_dict"]
    assert list(inspect.signature(Target._process_batch_message).parameters) == ["self", "message_dict"]
    assert list(inspect.signature(Target._process_activate_version_message).parameters) == ["self", "message_dict"]
    assert list(inspect.signature(Target._handle_termination).parameters) == ["self", "signum", "frame"]
    assert "raise_errors" in inspect.signature(Target._validate_config).parameters
    assert list(inspect.signature(Sink._add_sdc_metadata_to_record).parameters) == [
        "self", "record", "message", "context",
    ]


def test_record_metadata_and_record_count_go_through_the_adapter(sim, config, caplog):
    caplog.set_level(logging.INFO)
    run = run_in_process({**config, "add_record_metadata": True, "unknown_properties": "ignore"}, [
        schema("contacts"), *[record("contacts", contact(i)) for i in range(5)], state({"n": 5}),
    ])
    assert run.error is None, run.error
    counts = [r.getMessage() for r in caplog.records if '"metric":"record_count"' in r.getMessage()]
    assert counts and all('"value":5' in c for c in counts)
    assert run.states == [{"n": 5}]
