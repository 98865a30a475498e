"""Companies by domain: `match_property` streams through the command line, against the simulator's search.

The simulator plays HubSpot's search with a 2 s index lag and its per-second limit: objects this
run creates are not found by search for 2 s, so only the run's own memory keeps a domain from
being created twice.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from target_hubspot_upsert.core.errors import HubSpotConfigError
from target_hubspot_upsert.core.mapping import mapping_problems, resolve_stream

from .conftest import TOKEN
from .helpers import FIXTURES, record, run_cli, schema, state, summary

STREAM = "accounts"
FIELDS = {"domain": {"type": "string"}, "name": {"type": ["string", "null"]}}
EXISTING = [f"old{n}.example.com" for n in range(960)]
AMBIGUOUS = [f"twice{n}.example.org" for n in range(20)]
NEW = [f"new{n}.example.net" for n in range(900)]


def seed(sim) -> dict[str, list[str]]:
    """1,000 companies: 960 domains held once, 20 held twice (the second copy created later). Domain -> ids."""
    companies = [{"domain": d, "name": f"seed {d}"} for d in EXISTING + AMBIGUOUS]
    later = [{"domain": d, "name": f"seed copy {d}"} for d in AMBIGUOUS]
    ids: dict[str, list[str]] = defaultdict(list)
    with requests.Session() as http:
        for group in [companies[i : i + 100] for i in range(0, len(companies), 100)] + [later]:
            if group is later:
                time.sleep(0.01)  # a later createdAt than the first copies
            r = http.post(
                sim.base_url + "/crm/v3/objects/companies/batch/create",
                json={"inputs": [{"properties": p, "associations": []} for p in group]},
                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
            )
            assert r.status_code == 201, r.text
            for result in r.json()["results"]:
                ids[result["properties"]["domain"]].append(result["id"])
    assert sum(len(v) for v in ids.values()) == 1000
    return ids


def scenario(rng: random.Random) -> tuple[list[dict], dict[str, dict]]:
    """3,000 records and a STATE every 100: updates of existing domains, the 20 ambiguous ones, and
    900 new domains each appearing 1-3 times close together. Returns the messages and the last
    record per domain (lowercase)."""
    new_repeats = [1 + (n % 3) for n in range(len(NEW))]  # 1,800 records
    updates = 3000 - sum(new_repeats) - len(AMBIGUOUS)
    existing = EXISTING + rng.sample(EXISTING, updates - len(EXISTING))
    rng.shuffle(existing)
    singles: list[str] = existing + AMBIGUOUS
    rng.shuffle(singles)
    # New domains come in runs: a domain's repeats within a few records of each other.
    stream: list[str] = []
    new_iter = iter(zip(NEW, new_repeats, strict=True))
    pending: list[str] = []
    while singles or pending:
        if rng.random() < 0.4:
            nxt = next(new_iter, None)
            if nxt is not None:
                pending.extend([nxt[0]] * nxt[1])
                rng.shuffle(pending)
        if pending and rng.random() < 0.6:
            stream.append(pending.pop())
        elif singles:
            stream.append(singles.pop())
        elif pending:
            stream.append(pending.pop())
    for domain, times in new_iter:
        stream.extend([domain] * times)
    assert len(stream) == 3000
    messages: list[dict] = [schema(STREAM, FIELDS)]
    last: dict[str, dict] = {}
    for seq, domain in enumerate(stream):
        shown = domain.upper() if seq % 7 == 0 else domain  # any case matches
        rec = {"domain": shown, "name": f"{domain} #{seq}"}
        messages.append(record(STREAM, rec))
        last[domain] = rec
        if (seq + 1) % 100 == 0:
            messages.append(state({"n": seq + 1}))
    return messages, last


def run_scenario(sim, config, tmp_path, **mapping):
    ids = seed(sim)
    sim.configure(search_index_lag_seconds=2, search_rate_limit_per_second=4)
    messages, last = scenario(random.Random(25))
    rejected_path, report_path = tmp_path / "rejected.jsonl", tmp_path / "run.json"
    cfg = {
        **config, "rejected_records_path": str(rejected_path), "run_report_path": str(report_path), "max_rejected_records": 100,
        "object_mappings": {STREAM: {"object_type": "companies", "match_property": "domain", **mapping}},
    }
    run = run_cli(cfg, messages, tmp_path=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()] if rejected_path.exists() else []
    companies: dict[str, list[dict]] = defaultdict(list)
    for company in sim.objects("companies"):
        companies[company["properties"]["domain"].lower()].append(company)
    stats = sim.stats
    # Searches: about one per 100 distinct values, well under one per 20 records; few 429s.
    assert stats["searches"] <= 3000 / 20, stats
    assert stats["rate_limited_secondly"] <= 0.05 * stats["searches"], stats
    # STATE: only values the input sent, in order, the last one last (earlier ones may be coalesced).
    ns = [s["n"] for s in run.states]
    assert ns == sorted(set(ns))
    assert set(ns) <= set(range(100, 3001, 100))
    assert ns[-1] == 3000
    print(summary(run.stderr, STREAM), stats)  # noqa: T201 - shown with -s
    return run, ids, last, companies, rejected, json.loads(report_path.read_text())["streams"][STREAM]


def _ambiguous_rejections(rejected: list[dict]) -> None:
    codes = Counter(r["error"]["code"] for r in rejected)
    assert codes == Counter({"AMBIGUOUS_MATCH": len(AMBIGUOUS)}), codes
    assert {r["record"]["domain"].lower() for r in rejected} == set(AMBIGUOUS)
    for r in rejected:
        assert "2 HubSpot 'companies' objects hold domain" in r["error"]["message"]
        assert "on_multiple_matches" in r["error"]["message"]


def test_upsert_by_domain_updates_existing_creates_new_once_and_rejects_ambiguous(sim, config, tmp_path):
    run, ids, last, companies, rejected, report = run_scenario(sim, config, tmp_path)
    _ambiguous_rejections(rejected)
    for domain in EXISTING + NEW:
        held = companies[domain]
        assert len(held) == 1, (domain, held)  # no domain gained a second company
        assert held[0]["properties"]["name"] == last[domain]["name"]  # the last record's values
    for domain in EXISTING:
        assert [c["id"] for c in companies[domain]] == ids[domain]  # updated in place
    for domain in AMBIGUOUS:
        assert sorted(c["properties"]["name"] for c in companies[domain]) == [f"seed copy {domain}", f"seed {domain}"]
    assert len(sim.objects("companies")) == 1000 + len(NEW)
    # Counted per request input: later records of a domain in later batches are updates.
    assert report["created"] == len(NEW)
    assert report["received"] == 3000
    assert report["rejected"] == len(AMBIGUOUS)
    assert report["created"] + report["updated"] + report["merged"] + report["rejected"] == 3000
    # Updates went by record id, creates without idProperty: no batch upsert by a non-unique property.
    endpoints = Counter(e.endpoint for e in sim.requests)
    assert endpoints["batch_upsert"] == 0
    assert endpoints["batch_update"] > 0
    assert endpoints["batch_create"] > 0
    assert "AMBIGUOUS_MATCH" in run.stderr or "rejected 20" in summary(run.stderr, STREAM)
    assert "old1.example.com" not in run.stderr  # no record values in the logs


def test_update_mode_updates_existing_and_skips_new_domains(sim, config, tmp_path):
    _, _ids, last, companies, rejected, report = run_scenario(sim, config, tmp_path, write_mode="update")
    _ambiguous_rejections(rejected)
    assert len(sim.objects("companies")) == 1000  # nothing created
    for domain in EXISTING:
        assert [c["properties"]["name"] for c in companies[domain]] == [last[domain]["name"]]
    assert report["created"] == 0
    assert report["updated"] + report["merged"] + report["skipped_not_found"] + report["rejected"] == 3000


def test_create_mode_creates_new_domains_once_and_skips_existing(sim, config, tmp_path):
    _, _ids, _last, companies, rejected, report = run_scenario(sim, config, tmp_path, write_mode="create")
    assert rejected == []  # a domain held twice exists: skipped, not ambiguous
    for domain in EXISTING:
        assert [c["properties"]["name"] for c in companies[domain]] == [f"seed {domain}"]  # untouched
    for domain in NEW:
        assert len(companies[domain]) == 1
    assert len(sim.objects("companies")) == 1000 + len(NEW)
    assert report["created"] == len(NEW)
    assert report["updated"] == 0
    assert report["skipped_exists"] == 3000 - len(NEW)  # create mode merges nothing: later records are skipped


@pytest.mark.parametrize("policy", ["update_all", "oldest"])
def test_on_multiple_matches(sim, config, tmp_path, policy):
    _, ids, last, companies, rejected, report = run_scenario(sim, config, tmp_path, on_multiple_matches=policy)
    assert rejected == []
    for domain in EXISTING + NEW:
        assert [c["properties"]["name"] for c in companies[domain]] == [last[domain]["name"]]
    for domain in AMBIGUOUS:
        names = {c["id"]: c["properties"]["name"] for c in companies[domain]}
        first, second = ids[domain]  # the first was created earlier
        assert names[first] == last[domain]["name"]
        expected = last[domain]["name"] if policy == "update_all" else f"seed copy {domain}"
        assert names[second] == expected
    assert report["created"] == len(NEW)
    assert report["rejected"] == 0


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"object_type": "companies", "match_property": "domain", "id_property": "company_external_id"},
         "id_property and match_property exclude each other"),
        ({"object_type": "companies", "match_property": "domain", "on_multiple_matches": "newest"},
         "on_multiple_matches: must be one of reject, update_all or oldest"),
        ({"object_type": "companies", "on_multiple_matches": "oldest"}, "applies only with match_property"),
        ({"object_type": "companies", "match_property": "hs_object_id"}, "other than hs_object_id"),
    ],
)
def test_mapping_problems_name_the_setting(entry, expected):
    problems = mapping_problems({STREAM: entry})
    assert any(expected in p for p in problems), problems


def test_a_match_stream_resolves_to_its_property():
    target = resolve_stream(STREAM, {STREAM: {"object_type": "companies", "match_property": "domain",
                                              "on_multiple_matches": "oldest"}})
    assert (target.match_property, target.id_property, target.on_multiple_matches) == ("domain", "domain", "oldest")
    with pytest.raises(HubSpotConfigError):
        resolve_stream("accounts", {})


# --- search: pace, body size, memory, unconfirmed creates -------------------------------------------


def _accounts(domains: list[str]) -> list[dict]:
    return [schema(STREAM, FIELDS)] + [record(STREAM, {"domain": d, "name": f"n{i}"}) for i, d in enumerate(domains)] + [
        state({"done": True}),
    ]


def _match_config(config: dict, tmp_path, **extra) -> dict:
    return {
        **config, "rejected_records_path": str(tmp_path / "rejected.jsonl"),
        "object_mappings": {STREAM: {"object_type": "companies", "match_property": "domain"}}, **extra,
    }


def test_long_values_are_split_to_keep_each_search_body_within_3000_characters(sim, config, tmp_path):
    domains = [f"{n:03d}-{'x' * 50}.example.com" for n in range(150)]
    run = run_cli(_match_config(config, tmp_path), _accounts(domains), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    searches = [e for e in sim.requests if e.endpoint == "search"]
    assert len(searches) >= 3  # 150 values of ~65 characters: about 40 a request
    assert all(e.status == 200 for e in searches)
    assert all(len(json.dumps(e.request_body)) <= 3000 for e in searches if e.request_body is not None)
    assert len(sim.objects("companies")) == 150


def test_a_secondly_429_slows_searches_down_without_waiting_out_the_ten_second_window(sim, config, tmp_path):
    sim.configure(search_rate_limit_per_second=1)
    # 800 distinct values in batches of 10: 80 searches, at HubSpot's 1 a second here.
    domains = [f"d{n}.example.com" for n in range(60)]
    started = time.monotonic()
    run = run_cli(_match_config(config, tmp_path, batch_size_rows=10), _accounts(domains), tmp_path=tmp_path)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    stats = sim.stats
    assert stats["searches"] - stats["rate_limited_secondly"] == 6
    assert 1 <= stats["rate_limited_secondly"] <= 6  # learned from the first 429s: the pace came down
    assert stats["rate_limited_ten_secondly"] == 0
    assert elapsed < 60  # generous: a 429 SECONDLY costs about a second, never the ten-second window
    assert len(sim.objects("companies")) == 60


def test_an_unconfirmed_create_is_never_repeated_for_the_same_value(sim, config, tmp_path):
    sim.configure(search_index_lag_seconds=30)
    # The first create answers CANCELED with no results (nothing written): the creates are unconfirmed.
    sim.script_rewrites("batch_create", ["canceled"])
    domains = ["a.example.com", "b.example.com"]
    messages = [schema(STREAM, FIELDS), record(STREAM, {"domain": "a.example.com", "name": "1"}),
                record(STREAM, {"domain": "b.example.com", "name": "1"})]
    messages += [record(STREAM, {"domain": d, "name": "2"}) for d in domains]
    run = run_cli(_match_config(config, tmp_path, batch_size_rows=2), messages, tmp_path=tmp_path)
    assert run.returncode == 1  # rejections over max_rejected_records (0)
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    codes = Counter(r["error"]["code"] for r in rejected)
    assert codes == Counter({"NOT_ACKNOWLEDGED": 2, "UNCONFIRMED_CREATE": 2}), codes
    # No second create for a value whose first was unconfirmed (search cannot tell, it lags).
    assert sim.objects("companies") == []
    assert [e.endpoint for e in sim.requests].count("batch_create") == 1


def test_memory_is_bounded_but_keeps_recent_values():
    from target_hubspot_upsert.hubspot.matcher import MatchMemory  # noqa: PLC0415
    from target_hubspot_upsert.hubspot.search import Match  # noqa: PLC0415

    now = [0.0]
    memory = MatchMemory(max_values=3, keep_s=10, clock=lambda: now[0])
    for n in range(5):
        memory.put("companies", "domain", f"v{n}", [Match(str(n), "")])
    assert len(memory) == 5  # all learned within keep_s: none forgotten
    now[0] = 20.0
    memory.put("companies", "domain", "v5", [])
    assert len(memory) == 3
    assert set(memory.get("companies", "domain", [f"v{n}" for n in range(6)])) == {"v3", "v4", "v5"}
    assert memory.get("companies", "domain", ["v5"]) == {"v5": ()}  # known: no object holds it


def _seed_companies(sim, *domains: str) -> list[str]:
    with requests.Session() as http:
        r = http.post(sim.base_url + "/crm/v3/objects/companies/batch/create",
                      json={"inputs": [{"properties": {"domain": d, "name": "seed"}, "associations": []} for d in domains]},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 201, r.text
    return [res["id"] for res in r.json()["results"]]


DELETED = {**FIELDS, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}


@pytest.mark.parametrize(("policy", "left"), [("reject", 3), ("update_all", 1), ("oldest", 2)])
def test_deletes_archive_the_matched_objects(sim, config, tmp_path, policy, left):
    once, twice_a, _twice_b, _kept = _seed_companies(sim, "once.com", "twice.com", "twice.com", "kept.com")
    gone = "2024-03-01T10:00:00Z"
    messages = [schema(STREAM, DELETED)] + [
        record(STREAM, {"domain": d, "_sdc_deleted_at": gone}) for d in ("ONCE.com", "twice.com", "never.com")
    ] + [state({"n": 3})]
    cfg = _match_config(config, tmp_path, hard_delete=True, max_rejected_records=5)
    cfg["object_mappings"][STREAM]["on_multiple_matches"] = policy
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    archived = {c["id"] for c in sim.objects("companies", archived=True)}
    assert once in archived
    assert len(sim.objects("companies")) == left
    if policy == "oldest":
        assert twice_a in archived
    line = summary(run.stderr, STREAM)
    assert "already absent 1" in line
    if policy == "reject":
        assert "rejected 1" in line
        assert "AMBIGUOUS_MATCH" in (tmp_path / "rejected.jsonl").read_text()
    assert run.states == [{"n": 3}]


# --- the README's example ---------------------------------------------------------------------------


def test_readme_companies_by_domain_example_agrees_and_runs_on_its_fixture(sim, config, tmp_path):
    from .test_docs import readme_examples  # noqa: PLC0415

    (pair,) = readme_examples("Companies by domain (`match_property`)")
    from_yaml, from_json = pair
    assert from_yaml == from_json
    assert from_json["object_mappings"]["accounts"]["match_property"] == "domain"
    acme, _ = _seed_companies(sim, "acme.com", "acme.com")  # acme.com held twice: oldest wins
    sim.configure(search_index_lag_seconds=2)
    run = run_cli({**config, **from_json}, (FIXTURES / "companies_by_domain.singer").read_text(), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    by_domain = defaultdict(list)
    for company in sim.objects("companies"):
        by_domain[company["properties"]["domain"].lower()].append(company)
    assert {d: len(c) for d, c in by_domain.items()} == {"acme.com": 2, "globex.com": 1, "initech.com": 1}
    oldest = next(c for c in by_domain["acme.com"] if c["id"] == acme)
    assert oldest["properties"]["name"] == "Acme Inc."  # the last record for acme.com, in any case
    globex = by_domain["globex.com"][0]["properties"]
    assert (globex["name"], globex["industry"]) == ("Globex", "RETAIL")  # created once, then updated
    assert run.states == [{"bookmarks": {"accounts": {"updated_at": "2024-03-05T00:00:00Z"}}}]


def test_check_reports_how_many_values_match_one_object_none_or_several_without_writing(sim, config, tmp_path):
    _seed_companies(sim, "one.com", "two.com", "two.com")
    sim.configure(read_only=True)  # a write would be refused, and counted
    domains = ["one.com", "ONE.com", "two.com", "new1.com", "new2.com"]
    run = run_cli(_match_config(config, tmp_path), _accounts(domains), tmp_path=tmp_path, args=["--check"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Dry run, stream 'accounts': 1 value(s) match one object, 2 match none, 1 match several" in run.stderr
    assert sim.stats["writes_refused"] == 0
    assert len(sim.objects("companies")) == 3
    assert run.states == []


# --- associations to objects found by a property that need not be unique -----------------------------


def test_associations_to_companies_matched_by_domain(sim, config, tmp_path):
    """Contacts name their company by domain: companies created moments ago in the same run are found
    (search lags 2 s; the run's memory knows them), a domain held twice is AMBIGUOUS_MATCH under reject."""
    _seed_companies(sim, "old.com", "twice.com", "twice.com")
    sim.configure(search_index_lag_seconds=2, search_rate_limit_per_second=4)
    contact_fields = {"email": {"type": "string"}, "company_domain": {"type": ["string", "null"]}}
    messages = [schema(STREAM, FIELDS)] + [record(STREAM, {"domain": d, "name": d}) for d in ("new.com", "old.com")]
    messages += [schema("contacts", contact_fields)] + [
        record("contacts", {"email": f"{n}@x.com", "company_domain": d})
        for n, d in enumerate(["new.com", "OLD.com", "twice.com", "nowhere.com"])
    ] + [state({"n": 6})]
    cfg = _match_config(config, tmp_path, max_rejected_records=5)
    cfg["object_mappings"]["contacts"] = {"associations": [
        {"field": "company_domain", "to_object_type": "companies", "to_id_property": "domain"}]}
    run = run_cli(cfg, messages, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    company_of = {c["id"]: c["properties"]["domain"] for c in sim.objects("companies")}
    email_of = {c["id"]: c["properties"]["email"] for c in sim.objects("contacts")}
    links = {(email_of[a["fromId"]], company_of[a["toId"]]) for a in sim.associations("contacts", "companies")}
    assert links == {("0@x.com", "new.com"), ("1@x.com", "old.com")}
    assert len([d for d in company_of.values() if d == "new.com"]) == 1
    codes = Counter(json.loads(line)["error"]["code"] for line in (tmp_path / "rejected.jsonl").read_text().splitlines())
    assert codes == Counter({"AMBIGUOUS_MATCH": 1, "ASSOCIATION_TARGET_NOT_FOUND": 1})
    assert run.states == [{"n": 6}]


def test_skip_unchanged_skips_values_whose_records_did_not_change(sim, config, tmp_path):
    cfg = _match_config(config, tmp_path, skip_unchanged=True, change_cache_path=str(tmp_path / "changes.sqlite"))
    for names in ("first", "first", "second"):
        messages = [schema(STREAM, FIELDS)] + [record(STREAM, {"domain": f"d{i}.com", "name": names}) for i in range(5)]
        run = run_cli(cfg, [*messages, state({"n": 5})], tmp_path=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
    endpoints = [e.endpoint for e in sim.requests if e.endpoint in ("search", "batch_create", "batch_update")]
    assert endpoints == ["search", "batch_create", "search", "batch_update"]  # the second run sent nothing
    assert sorted(c["properties"]["name"] for c in sim.objects("companies")) == ["second"] * 5


@given(st.lists(st.text(min_size=1, max_size=300), max_size=400))
@settings(max_examples=60, deadline=None)
def test_search_bodies_stay_within_3000_characters_and_100_values(values):
    from target_hubspot_upsert.hubspot.search import MAX_BODY_CHARS, _body, value_chunks  # noqa: PLC0415

    chunks = value_chunks("domain", values)
    assert [v for chunk in chunks for v in chunk] == values  # every value once, in order
    for chunk in chunks:
        assert 1 <= len(chunk) <= 100
        body = _body("domain", chunk, "9800")
        assert len(body.decode()) <= MAX_BODY_CHARS or len(chunk) == 1  # a single huge value goes alone


def test_a_value_too_long_to_search_for_is_a_rejected_record(sim, config, tmp_path):
    domains = ["ok.com", "x" * 3000 + ".com", "fine.com"]
    run = run_cli(_match_config(config, tmp_path, max_rejected_records=1), _accounts(domains), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    (rejected,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert rejected["error"]["code"] == "INVALID_VALUE"
    assert "too long to search for" in rejected["error"]["message"]
    assert sorted(c["properties"]["domain"] for c in sim.objects("companies")) == ["fine.com", "ok.com"]


def test_a_non_unique_id_property_points_to_match_property(sim, config, tmp_path):
    cfg = {**config, "object_mappings": {STREAM: {"object_type": "companies", "id_property": "domain"}}}
    run = run_cli(cfg, _accounts(["a.com"]), tmp_path=tmp_path)
    assert run.returncode != 0
    assert "does not have unique values" in run.stderr
    assert "use match_property instead of id_property" in run.stderr


def test_a_match_property_the_object_lacks_is_named(sim, config, tmp_path):
    cfg = {**config, "object_mappings": {STREAM: {"object_type": "companies", "match_property": "website"}}}
    run = run_cli(cfg, "", tmp_path=tmp_path, args=["--check"])  # no input: the mapping alone is checked
    assert run.returncode != 0
    assert "no property 'website', the match_property of stream 'accounts'" in run.stderr
    fields = {"website": {"type": "string"}}
    run = run_cli(cfg, [schema(STREAM, fields), record(STREAM, {"website": "a.com"})], tmp_path=tmp_path)
    assert run.returncode != 0
    assert "'website'" in run.stderr


def test_the_3000_record_run_with_contacts_associated_to_companies_by_domain(sim, config, tmp_path):
    """The acceptance run, with 500 contacts among the accounts naming their company by domain."""
    ids = seed(sim)
    sim.configure(search_index_lag_seconds=2, search_rate_limit_per_second=4)
    rng = random.Random(2525)
    accounts, last = scenario(rng)
    contact_fields = {"email": {"type": "string"}, "company_domain": {"type": "string"}}
    messages: list[dict] = [accounts[0], schema("contacts", contact_fields)]
    seen: list[str] = []
    wanted: dict[str, str] = {}
    n = 0
    for message in accounts[1:]:
        messages.append(message)
        if message["type"] == "RECORD":
            seen.append(message["record"]["domain"].lower())
            if len(seen) % 6 == 0 and n < 500:
                domain = rng.choice(seen[-50:])  # often a company created moments ago
                email = f"c{n}@example.com"
                messages.append(record("contacts", {"email": email, "company_domain": domain.upper()}))
                wanted[email] = domain
                n += 1
    cfg = {
        **config, "rejected_records_path": str(tmp_path / "rejected.jsonl"), "max_rejected_records": 1000,
        "object_mappings": {
            STREAM: {"object_type": "companies", "match_property": "domain"},
            "contacts": {"associations": [
                {"field": "company_domain", "to_object_type": "companies", "to_id_property": "domain"}]},
        },
    }
    run = run_cli(cfg, messages, tmp_path=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    companies: dict[str, list[dict]] = defaultdict(list)
    for company in sim.objects("companies"):
        companies[company["properties"]["domain"].lower()].append(company)
    for domain in EXISTING + NEW:
        assert [c["properties"]["name"] for c in companies[domain]] == [last[domain]["name"]]  # one company each
    company_of = {c["id"]: c["properties"]["domain"].lower() for c in sim.objects("companies")}
    email_of = {c["id"]: c["properties"]["email"] for c in sim.objects("contacts")}
    links = {(email_of[a["fromId"]], company_of[a["toId"]]) for a in sim.associations("contacts", "companies")}
    expected = {(e, d) for e, d in wanted.items() if d not in AMBIGUOUS}
    assert links == expected
    assert [ids[d] for d in EXISTING[:5]] == [[c["id"] for c in companies[d]] for d in EXISTING[:5]]
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    ambiguous_contacts = sum(1 for d in wanted.values() if d in AMBIGUOUS)
    assert Counter(r["error"]["code"] for r in rejected) == Counter(
        {"AMBIGUOUS_MATCH": len(AMBIGUOUS) + ambiguous_contacts})
    assert sim.stats["searches"] <= (3000 + n) / 20
    assert sim.stats["rate_limited_secondly"] <= 0.05 * sim.stats["searches"]
    assert [s["n"] for s in run.states][-1] == 3000
