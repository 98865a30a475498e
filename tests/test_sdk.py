"""The SDK's standard target tests, curated, against the local simulator.

Every stream of the SDK's test files is mapped to the simulator's custom object `p_widgets`
by its `id` field, with `unknown_properties: create` so their ad-hoc fields become properties.
`batch_size_rows: 3` makes TargetMultipleStateMessages exercise checkpoints held across
batches: with it, and one batch in flight at a time, the expected STATE lines are exactly the ones
whose records had landed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from hubspot_simulator import HubSpotSimulator
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetArrayData,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    TargetMultipleStateMessages,
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetPrimaryKeyUpdates,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingOptionalFields,
    TargetSchemaUpdates,
)

from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .conftest import TOKEN

STREAMS = [
    "test_array_data", "test_duplicate_records", "test_strings", "test_strings_in_objects",
    "test_strings_in_arrays", "test_multiple_state_messages_a", "test_multiple_state_messages_b",
    "test_no_pk", "test_optional_attributes", "example_stream", "test_record_before_schema",
    "record_missing_fields", "test_schema_updates",
]


@pytest.fixture(scope="module")
def sdk_sim() -> Iterator[HubSpotSimulator]:
    """One simulator for the SDK's tests (they build on each other's custom properties)."""
    with HubSpotSimulator(tokens={TOKEN}) as simulator:
        yield simulator


@pytest.fixture
def sdk_config(sdk_sim) -> dict:
    """Every SDK test stream upserts into `p_widgets` by its `id` field."""
    return {
        "access_token": TOKEN,
        "api_base_url": sdk_sim.base_url,
        "unknown_properties": "create",
        "batch_size_rows": 3,
        # One batch at a time: TargetMultipleStateMessages expects the STATEs written as each
        # batch lands in input order; with several in flight a later batch may land first, and the
        # ledger then (rightly) writes only the newest STATE it passed.
        "max_concurrent_requests": 1,
        "object_mappings": {s: {"object_type": "p_widgets", "id_property": "id"} for s in STREAMS},
    }


target_tests = SingerTestSuite(
    kind="target",
    tests=[
        TargetArrayData,
        # TargetCamelcaseTest, TargetCamelcaseComplexSchema: fields such as `clientName` are not
        # valid HubSpot property names; users rename them with stream_maps.
        TargetCliPrintsTest,
        TargetDuplicateRecords,
        TargetEncodedStringData,
        TargetInvalidSchemaTest,
        TargetMultipleStateMessages,
        TargetNoPrimaryKeys,
        TargetOptionalAttributes,
        TargetPrimaryKeyUpdates,
        TargetRecordBeforeSchemaTest,
        # TargetRecordMissingKeyProperty: expects the run to stop when the key property is
        # missing; here that key is the upsert id, and a record without its id is rejected
        # with a reason while the others land (tests/test_isolation.py).
        # TargetRecordMissingRequiredProperty: expects a record that fails schema validation to
        # be accepted; this target stops on invalid input by design.
        # TargetSchemaNoProperties: its only field is an object, with no field to upsert by.
        TargetSchemaUpdates,
        # TargetSpecialCharsInAttributes: field names like `agent:type` cannot be HubSpot
        # property names.
        TargetRecordMissingOptionalFields,
    ],
)

# The config comes from the `runner` fixture below, once the simulator has started.
StandardTests = get_target_test_class(
    target_class=TargetHubSpotUpsert,
    custom_suites=[target_tests],
    include_target_tests=False,
)


class RawStateRunner(TargetTestRunner):
    """Keeps each STATE line exactly as the target wrote it.

    The SDK's TargetMultipleStateMessages compares its expected JSON *strings* with the
    runner's parsed dicts, which no target can satisfy; comparing the raw lines runs its
    assertion, unchanged, against exactly what the target wrote on stdout.
    """

    @staticmethod
    def _clean_sync_output(raw_records: str) -> list:  # type: ignore[override]
        return [line for line in raw_records.strip().split("\n") if line]


class TestTargetHubSpotUpsert(StandardTests):  # type: ignore[misc,valid-type]
    """The SDK's standard target tests."""

    @pytest.fixture
    def runner(self, sdk_config) -> TargetTestRunner:
        """The SDK's runner, keeping raw STATE lines."""
        return RawStateRunner(target_class=TargetHubSpotUpsert, config=sdk_config, parse_env_config=True)


def test_duplicate_records_landed_last_values(sdk_sim, sdk_config):
    """What the SDK's duplicate-records file leaves in HubSpot: the last value per id."""
    from pathlib import Path  # noqa: PLC0415

    from singer_sdk.testing.target_test_streams import __file__ as streams_init  # noqa: PLC0415

    text = (Path(streams_init).parent / "duplicate_records.singer").read_text()
    expected: dict[str, str] = {}
    for line in text.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            expected[str(message["record"]["id"])] = str(message["record"]["metric"])
    target = TargetHubSpotUpsert(config=sdk_config)
    target.listen(io.StringIO(text))
    for record_id, metric in expected.items():
        landed = sdk_sim.find("p_widgets", "id", record_id)
        assert landed is not None
        assert landed["properties"]["metric"] == metric


def test_sdk_timestamp_parsing_hook_still_exists():
    """The sink overrides a private SDK hook; fail loudly if the SDK renames it."""
    from singer_sdk.sinks.core import Sink  # noqa: PLC0415

    assert hasattr(Sink, "_parse_timestamps_in_record")
    assert hasattr(TargetHubSpotUpsert, "_process_state_message")
    assert hasattr(TargetHubSpotUpsert, "_handle_termination")
    pytest.importorskip("fastjsonschema")
