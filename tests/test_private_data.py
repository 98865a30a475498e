"""Personal data stays out of the logs: at the default level no record value or id appears on stderr
or in the run report, whatever went wrong with the record; `log_record_values: true` puts them back.

One run through the command line sends good records and records that fail in every way the target
knows: an invalid email id, a bad number, an unknown field under `fail`, a HubSpot validation rule,
a unique-value conflict (409, "Existing ID: ..."), a failing `stream_maps` expression, a SCHEMA
mismatch, and finally a line that is not JSON.
"""

from __future__ import annotations

import json

import pytest
import requests

from target_hubspot_upsert.core.errors import HubSpotFatalError
from target_hubspot_upsert.core.mapping import ObjectTarget
from target_hubspot_upsert.core.model import Batch, PendingInput
from target_hubspot_upsert.hubspot.client import ApiResponse
from target_hubspot_upsert.hubspot.writer import BatchWriter

from .conftest import TOKEN
from .helpers import lines, record, run_cli, schema, state

CONTACT_FIELDS = {
    "email": {"type": "string"},
    "firstname": {"type": ["string", "null"]},
    "num_orders": {"type": ["integer", "null"]},
    "lifetime_value": {"type": ["string", "null"]},  # a number property in HubSpot: text is checked there
    "orders_text": {"type": ["string", "null"]},
}
PEOPLE_FIELDS = {"external_id": {"type": "string"}, "email": {"type": "string"}}

# Each record's values, and the values a log shows with log_record_values (its id, the bad value).
RECORDS = [
    ("contacts", {"email": "alice.good@example.com", "firstname": "Alicegoodname"}, []),
    ("contacts", {"email": "bob-not-an-email-zq7", "firstname": "Bobbadmailname"}, ["bob-not-an-email-zq7"]),
    ("contacts", {"email": "carol.num@example.com", "lifetime_value": "carol-revenue-x9"}, ["carol-revenue-x9"]),
    ("contacts", {"email": "dave.unknown@example.com", "secret_field_q": "dave-secret-value"},
     ["dave.unknown@example.com"]),
    ("contacts", {"email": "eve.blocked@example.com", "firstname": "Eveblockedname"}, ["Eveblockedname"]),
    ("contacts", {"email": "frank.map@example.com", "orders_text": "frank-orders-zz"}, ["frank-orders-zz"]),
    ("contacts", {"email": "heidi.schema@example.com", "num_orders": "heidi-not-int"}, []),
    ("people", {"external_id": "ext-ivan-77", "email": "taken.owner@example.com"}, ["ext-ivan-77", "Existing ID: 1"]),
    ("contacts", {"email": "judy.good@example.com", "firstname": "Judygoodname"}, []),
]
BROKEN_LINE = '{"type": "RECORD", "stream": "contacts", "record": {"email": "grace.json@example.com", "firstname": "Gracename"\n'
SECRETS = [value for _, rec, _ in RECORDS for value in rec.values()] + [
    "grace.json@example.com", "Gracename", "Existing ID: 1", "taken.owner",
]


@pytest.fixture
def prepared(sim):
    """The simulator with an owner of the email the people stream collides with, and a validation rule."""
    reply = requests.post(
        sim.base_url + "/crm/v3/objects/contacts/batch/upsert", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"},
        json={"inputs": [{"id": "taken.owner@example.com", "idProperty": "email", "properties": {}}]},
    )
    assert reply.json()["results"][0]["id"] == "1"
    sim.add_validation_rule("contacts", "firstname", "Eveblockedname", "Eveblockedname is not allowed here")
    return sim


def run_all(sim, tmp_path, **settings):
    config = {
        "access_token": TOKEN, "api_base_url": sim.base_url, "max_rejected_records": 20, "batch_size_rows": 1,
        "run_report_path": str(tmp_path / "report.json"),
        "object_mappings": {"people": {"object_type": "contacts", "id_property": "external_id"}},
        "stream_maps": {"contacts": {
            "num_orders": "int(record['orders_text']) if record.get('orders_text') else record.get('num_orders')",
            "orders_text": "__NULL__",
        }},
        **settings,
    }
    messages = [schema("contacts", CONTACT_FIELDS, key=["email"]), schema("people", PEOPLE_FIELDS, key=["external_id"])]
    for index, (stream, rec, _) in enumerate(RECORDS):
        messages += [record(stream, rec), state({"n": index})]
    run = run_cli(config, lines(messages) + BROKEN_LINE, tmp_path=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "Input line 21 is not valid JSON" in run.stderr
    report = (tmp_path / "report.json").read_text()
    return run, report


def test_no_record_value_or_id_in_logs_or_report_by_default(prepared, tmp_path):
    run, report = run_all(prepared, tmp_path)
    codes = ["INVALID_ID", "INVALID_VALUE", "UNKNOWN_PROPERTY", "VALIDATION_RULE_VIOLATION", "CONFLICT", "MAP_ERROR",
             "SCHEMA_MISMATCH"]
    for code in codes:  # every failure was met, and is named by its code
        assert code in run.stderr, code
    assert len(json.loads(report)["streams"]["contacts"]["first_errors"]) == 5
    assert "'lifetime_value'" in run.stderr and "'firstname'" in run.stderr  # property names are not values
    leaks = [value for value in SECRETS if value in run.stderr or value in report]
    assert leaks == []
    assert json.loads(report)["streams"]["contacts"]["rejected"] == 6


def test_log_record_values_puts_them_back(prepared, tmp_path):
    run, _ = run_all(prepared, tmp_path, log_record_values=True)
    shown = [value for _, _, values in RECORDS for value in values]
    missing = [value for value in shown if value not in run.stderr]
    assert missing == []
    assert "grace.json@example.com" not in run.stderr  # input lines are never quoted


class AnswersOnce:
    """A stand-in for the HubSpot client: every batch upsert gets the same answer."""

    def __init__(self, status: int, body: dict) -> None:
        self.answer = ApiResponse(status, body, {})

    def batch_upsert(self, object_type, inputs, *, stream=None, tally=None, id_property=None) -> ApiResponse:
        return self.answer


@pytest.mark.parametrize("log_values", [False, True])
def test_a_fatal_answer_names_code_and_properties_unless_values_are_asked_for(log_values):
    body = {
        "status": "error", "category": "VALIDATION_ERROR",
        "message": "Property values were not valid: alice.good@example.com is not a valid email for Alicegoodname",
        "errors": [{"code": "INVALID_EMAIL", "message": "alice.good@example.com", "context": {"propertyName": ["email"]}}],
    }
    writer = BatchWriter(AnswersOnce(415, body), log_values=log_values)
    item = PendingInput("alice.good@example.com", {"firstname": "Alicegoodname"}, [])
    with pytest.raises(HubSpotFatalError) as caught:
        writer.write(Batch(1, "contacts", ObjectTarget("contacts", "contacts", "email"), [item], 1))
    message = str(caught.value)
    assert message.startswith("HubSpot answered 415 to a batch upsert of 'contacts' (stream 'contacts'): ")
    if log_values:
        assert "alice.good@example.com is not a valid email for Alicegoodname" in message
    else:
        assert message.endswith("INVALID_EMAIL for 'email'")
        assert "alice" not in message.lower()
