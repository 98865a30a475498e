"""Values land as HubSpot expects: catalogue pre-flight, unknown and read-only properties, nulls."""

from __future__ import annotations

from target_hubspot_upsert.core.errors import HubSpotConfigError

from .helpers import record, run_cli, run_in_process, schema, state

PROPS = {
    "email": {"type": "string"},
    "firstname": {"type": ["string", "null"]},
    "favorite_color": {"type": ["string", "null"]},
    "loyalty_points": {"type": ["integer", "null"]},
}


def catalogue_reads(sim, object_type="contacts"):
    return [e for e in sim.requests if e.method == "GET" and e.path.endswith(f"/properties/{object_type}")]


def test_unknown_properties_fail_sends_nothing_and_names_the_ways_out(sim, config):
    run = run_in_process(config, [schema("contacts", PROPS), record("contacts", {"email": "a@b.co", "favorite_color": "red"})])
    assert isinstance(run.error, HubSpotConfigError)
    message = str(run.error.errors[0])
    for expected in ("'favorite_color'", "'loyalty_points'", "contacts", "stream_maps", "ignore", "create"):
        assert expected in message
    assert sim.upsert_requests() == []


def test_unknown_properties_ignore_leaves_them_out_and_warns_once(sim, config, tmp_path):
    messages = [schema("contacts", PROPS)] + [
        record("contacts", {"email": f"u{i}@b.co", "firstname": "X", "favorite_color": "red", "loyalty_points": i})
        for i in range(150)
    ]
    run = run_cli({**config, "unknown_properties": "ignore"}, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Field 'favorite_color'") == 1
    assert run.stderr.count("Field 'loyalty_points'") == 1
    sent = [inp for e in sim.upsert_requests() for inp in e.request_body["inputs"]]
    assert len(sent) == 150 and all("favorite_color" not in i["properties"] for i in sent)
    assert sim.find("contacts", "email", "u7@b.co")["properties"]["firstname"] == "X"


def test_unknown_properties_create_creates_once_with_derived_types(sim, config):
    props = {
        **PROPS,
        "signup_day": {"type": ["string", "null"], "format": "date"},
        "last_seen": {"type": ["string", "null"], "format": "date-time"},
        "opted_in": {"type": ["boolean", "null"]},
        "tags_list": {"type": ["array", "null"], "items": {"type": "string"}},
    }
    rec = {"email": "c@b.co", "favorite_color": "red", "loyalty_points": 12, "signup_day": "2024-01-31",
           "last_seen": "2024-02-01T10:00:00Z", "opted_in": True, "tags_list": ["a", "b"]}
    cfg = {**config, "unknown_properties": "create", "property_group": "warehouse_sync"}
    for _ in range(2):
        run = run_in_process(cfg, [schema("contacts", props), record("contacts", rec)])
        assert run.error is None
    created = [e for e in sim.requests if e.method == "POST" and e.path == "/crm/v3/properties/contacts"]
    assert len(created) == 6  # once each, in the first run only
    by_name = {e.request_body["name"]: e.request_body for e in created}
    assert (by_name["loyalty_points"]["type"], by_name["loyalty_points"]["fieldType"]) == ("number", "number")
    assert (by_name["favorite_color"]["type"], by_name["favorite_color"]["fieldType"]) == ("string", "text")
    assert (by_name["signup_day"]["type"], by_name["signup_day"]["fieldType"]) == ("date", "date")
    assert (by_name["last_seen"]["type"], by_name["last_seen"]["fieldType"]) == ("datetime", "date")
    assert (by_name["opted_in"]["type"], by_name["opted_in"]["fieldType"]) == ("bool", "booleancheckbox")
    assert by_name["tags_list"]["type"] == "string"
    assert all(b["groupName"] == "warehouse_sync" for b in by_name.values())
    landed = sim.find("contacts", "email", "c@b.co")["properties"]
    assert landed["loyalty_points"] == "12" and landed["opted_in"] == "true"
    assert landed["signup_day"] == "2024-01-31" and landed["tags_list"] == "a;b"


def test_read_only_and_calculated_properties_are_dropped_with_one_warning(sim, config, tmp_path):
    props = {"email": {"type": "string"}, "hs_email_domain": {"type": "string"}, "createdate": {"type": "string"}}
    messages = [schema("contacts", props)] + [
        record("contacts", {"email": f"r{i}@b.co", "hs_email_domain": "x", "createdate": "2020-01-01"}) for i in range(3)
    ]
    run = run_cli(config, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Property 'hs_email_domain'") == 1 and run.stderr.count("Property 'createdate'") == 1
    sent = [inp for e in sim.upsert_requests() for inp in e.request_body["inputs"]]
    assert all(set(i["properties"]) == {"email"} for i in sent)


def test_catalogue_is_fetched_once_per_object_type_per_run(sim, config):
    cfg = {**config, "object_mappings": {"crm_contacts": {"object_type": "0-1", "id_property": "email"}}}
    messages = [schema("contacts"), schema("crm_contacts")]
    for i in range(1500):
        messages.append(record("contacts" if i % 2 else "crm_contacts", {"email": f"p{i}@b.co", "firstname": "F"}))
    messages.append(schema("contacts"))  # a repeated SCHEMA does not refetch either
    run = run_in_process(cfg, messages)
    assert run.error is None
    assert len(sim.objects("contacts")) == 1500
    assert len(catalogue_reads(sim)) + len(catalogue_reads(sim, "0-1")) == 1


def test_null_values_skip_keeps_and_clear_empties(sim, config):
    first = [schema("contacts"), record("contacts", {"email": "n@b.co", "firstname": "Keep", "num_orders": 5})]
    assert run_in_process(config, first).error is None
    update = [schema("contacts"), record("contacts", {"email": "n@b.co", "firstname": None, "num_orders": None})]
    assert run_in_process(config, update).error is None
    assert sim.find("contacts", "email", "n@b.co")["properties"]["firstname"] == "Keep"
    assert run_in_process({**config, "null_values": "clear"}, update).error is None
    last_input = sim.upsert_requests()[-1].request_body["inputs"][0]
    assert last_input["properties"]["firstname"] == "" and last_input["properties"]["num_orders"] == ""
    assert sim.find("contacts", "email", "n@b.co")["properties"].get("firstname", "") == ""


def test_stream_maps_rename_drop_and_compute(sim, config):
    cfg = {
        **config,
        "stream_maps": {
            "contacts": {
                "firstname": "first_name",        # rename
                "first_name": None,               # drop the original name
                "internal_note": None,            # drop
                "num_orders": "int(order_count) * 1",  # compute
                "order_count": None,
            }
        },
    }
    props = {
        "email": {"type": "string"}, "first_name": {"type": "string"},
        "internal_note": {"type": "string"}, "order_count": {"type": "integer"},
    }
    run = run_in_process(cfg, [
        schema("contacts", props),
        record("contacts", {"email": "m@b.co", "first_name": "Mapped", "internal_note": "secret", "order_count": 7}),
        state({"ok": True}),
    ])
    assert run.error is None, run.error
    landed = sim.find("contacts", "email", "m@b.co")["properties"]
    assert landed["firstname"] == "Mapped" and landed["num_orders"] == "7"
    assert "internal_note" not in landed
    assert run.states == [{"ok": True}]


def test_a_stream_map_failing_on_one_record_rejects_that_record(sim, config):
    cfg = {**config, "max_rejected_records": 1,
           "stream_maps": {"contacts": {"num_orders": "int(order_count)", "order_count": None}}}
    props = {"email": {"type": "string"}, "order_count": {"type": "string"}}
    run = run_in_process(cfg, [
        schema("contacts", props),
        record("contacts", {"email": "a@b.co", "order_count": "3"}),
        record("contacts", {"email": "c@d.co", "order_count": "abc"}),
        record("contacts", {"email": "e@f.co", "order_count": "5"}),
        state({"ok": True}),
    ])
    assert run.error is None, run.error
    assert sim.find("contacts", "email", "a@b.co")["properties"]["num_orders"] == "3"
    assert sim.find("contacts", "email", "c@d.co") is None
    stats = run.target.runtime.report.stats["contacts"]
    assert (stats.received, stats.created, stats.rejected) == (3, 2, 1)
    assert "MAP_ERROR" in stats.first_errors[0] and "(ValueError)" in stats.first_errors[0]
    assert run.states == [{"ok": True}]


def test_a_stream_map_that_drops_a_key_property_is_a_clear_error(sim, config, tmp_path):
    cfg = {**config, "stream_maps": {"contacts": {"email": None}}}
    run = run_cli(cfg, [schema("contacts", key=["email"]), record("contacts", {"email": "a@b.co"})], tmp_path=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "Configuration error in stream_maps" in run.stderr


def test_bad_values_are_reported_with_property_value_and_format_not_sent(sim, config, tmp_path):
    rejected = tmp_path / "rejected.jsonl"
    props = {"email": {"type": "string"}, "num_orders": {"type": ["string", "null"]}, "date_of_birth": {"type": ["string", "null"]}}
    run = run_in_process({**config, "max_rejected_records": 10, "rejected_records_path": str(rejected)}, [
        schema("contacts", props),
        record("contacts", {"email": "good@b.co", "num_orders": "12"}),
        record("contacts", {"email": "bad1@b.co", "num_orders": "twelve"}),
        record("contacts", {"email": "bad2@b.co", "date_of_birth": "2024-01-01T10:00:00Z"}),
    ])
    assert run.error is None
    sent_ids = [i for e in sim.upsert_requests() for i in e.ids]
    assert sent_ids == ["good@b.co"]
    lines = rejected.read_text().splitlines()
    assert len(lines) == 2
    assert "num_orders" in lines[0] and "twelve" in lines[0] and "decimal number" in lines[0]
    assert "date_of_birth" in lines[1] and "midnight UTC" in lines[1]


def test_flattening_and_record_metadata_settings_keep_working(sim, config):
    props = {"email": {"type": "string"}, "address": {"type": "object", "properties": {"city": {"type": "string"}}}}
    cfg = {**config, "flattening_enabled": True, "flattening_max_depth": 1, "unknown_properties": "create",
           "add_record_metadata": True}
    run = run_in_process(cfg, [
        schema("contacts", props),
        record("contacts", {"email": "flat@b.co", "address": {"city": "Leeds"}}),
        state({"ok": 1}),
    ])
    assert run.error is None, run.error
    landed = sim.find("contacts", "email", "flat@b.co")["properties"]
    assert landed["address__city"] == "Leeds"
    sent = sim.upsert_requests()[0].request_body["inputs"][0]["properties"]
    assert not any(name.startswith("_sdc_") for name in sent)  # metadata columns are not properties
    assert run.states == [{"ok": 1}]
