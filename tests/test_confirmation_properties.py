"""Property: whatever a 2xx answer confirms, an input counts as landed only if HubSpot holds its values.

Hypothesis draws answers to a batch upsert (which inputs HubSpot really wrote, which of their results
come back, duplicated, extra, stripped of trace ids and id values, and the answer's status), for the
first request and each resend, against the local simulator. Every input must end landed (and then
held by HubSpot with the values sent) or rejected with a reason: never counted by position.
"""

from __future__ import annotations

import copy
import random

from hubspot_simulator import HubSpotSimulator
from hubspot_simulator.rewrite import Rewrite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import CREATED, UPDATED, Batch, PendingInput, RecordRef
from target_hubspot_upsert.http.auth import StaticToken
from target_hubspot_upsert.http.transport import Transport
from target_hubspot_upsert.hubspot.client import HubSpotClient
from target_hubspot_upsert.hubspot.writer import BatchWriter

from .conftest import TOKEN


@st.composite
def answers(draw: st.DrawFn) -> Rewrite:
    written = draw(st.lists(st.booleans(), min_size=8, max_size=8))
    returned = draw(st.lists(st.booleans(), min_size=8, max_size=8))
    duplicates = draw(st.lists(st.integers(0, 7), max_size=3))
    extras = draw(st.integers(0, 2))
    strip = draw(st.lists(st.sampled_from(["trace", "id_value", "both", None]), min_size=8, max_size=8))
    status = draw(st.sampled_from(["COMPLETE", "PENDING", "PROCESSING", "CANCELED"]))
    order = draw(st.integers(0, 2**16))

    def keep(inputs: list) -> list:
        return [inp for i, inp in enumerate(inputs) if written[i % 8]]

    def change(body: dict) -> dict:
        results = [r for i, r in enumerate(body.get("results") or []) if returned[i % 8]]
        results += [copy.deepcopy(results[i % len(results)]) for i in duplicates if results]
        for n in range(extras if results else 0):
            extra = copy.deepcopy(results[0])
            extra["id"] = str(8_000_000_000 + n)
            extra.pop("objectWriteTraceId", None)
            extra["properties"] = {"hs_object_id": extra["id"]}
            results.append(extra)
        for i, result in enumerate(results):
            how = strip[i % 8]
            if how in ("trace", "both"):
                result.pop("objectWriteTraceId", None)
            if how in ("id_value", "both"):
                result["properties"] = {k: v for k, v in result["properties"].items() if k != "email"}
        random.Random(order).shuffle(results)
        return {**body, "status": status, "results": results}

    return Rewrite(keep, change)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(answers(), min_size=1, max_size=3), size=st.integers(1, 8), existing=st.integers(0, 8))
def test_inputs_counted_as_landed_are_held_by_hubspot_with_the_values_sent(script, size, existing):
    with HubSpotSimulator(tokens={TOKEN}) as sim:
        client = HubSpotClient(sim.base_url, StaticToken(TOKEN), max_retries=0, transport=Transport(timeout=10))
        try:
            if existing:  # some objects exist already, with other values
                client.batch_upsert("contacts", [
                    {"id": f"u{i}@example.com", "idProperty": "email", "properties": {"firstname": "old"}}
                    for i in range(existing)
                ])
            sim.script_rewrites("batch_upsert", script)
            inputs = [
                PendingInput(f"u{i}@example.com", {"email": f"u{i}@example.com", "firstname": f"new {i}"},
                             [RecordRef(i + 1, i + 1, {})])
                for i in range(size)
            ]
            batch = Batch(1, "contacts", ObjectTarget("contacts", "contacts", "email"), inputs, 1)
            outcome = BatchWriter(client).write(batch)
        finally:
            client.close()
        held = {o["properties"]["email"]: o for o in sim.objects("contacts")}
    rejected = {id(entry[0]) for entry in outcome.rejected}
    for item in inputs:
        landed = item.result in (CREATED, UPDATED) and id(item) not in rejected
        # Every input is accounted for: landed, or rejected with a reason.
        assert landed or id(item) in rejected, (item.id, item.result)
        if landed:
            assert item.id in held, f"{item.id} counted {item.result} but HubSpot does not hold it"
            assert held[item.id]["properties"]["firstname"] == item.properties["firstname"]
            assert item.object_id == held[item.id]["id"]  # associations would use the right object
    for _item, _category, code, message, _safe in outcome.rejected:
        assert code and message
