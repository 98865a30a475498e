"""Benchmark of `match_property`: accounts loaded into companies by domain, through search.

Run from the repository root::

    uv run python bench/match.py                 # 20,000 accounts, half of them existing
    uv run python bench/match.py --records 2000  # a smoke run

The simulator (in this process) holds the existing half of the companies, then plays HubSpot's
limits: 100 requests per 10 s for writes, 4 searches a second (HubSpot's search limit, apart from
the ten-second window), and a 2 s search index lag. The target runs as a child process on a
Singer file of one record per account. The script prints requests per record and the wall time
next to the fastest run those limits allow: the searches (one per 100 distinct values, at 4 a
second) or the writes (one per 100 records, 100 per 10 s), whichever takes longer, plus start-up.
It FAILs when the target exits non-zero, when a domain is held by other than one company, or when
the last STATE is not the last one sent.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests
from hubspot_simulator import HubSpotSimulator

TOKEN = "bench-token"
WRITE_LIMIT = 100  # requests per 10 s
SEARCHES_PER_S = 4
LAG_S = 2.0


def seed(sim: HubSpotSimulator, domains: list[str]) -> None:
    """Create the existing companies (before the limits are switched on)."""
    with requests.Session() as http:
        for start in range(0, len(domains), 100):
            group = domains[start : start + 100]
            inputs = [{"properties": {"domain": d, "name": "seed"}, "associations": []} for d in group]
            r = http.post(
                sim.base_url + "/crm/v3/objects/companies/batch/create", json={"inputs": inputs},
                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
            )
            r.raise_for_status()


def write_input(path: Path, domains: list[str]) -> None:
    """One SCHEMA, a RECORD per account, a STATE every 1,000 records and at the end."""
    with path.open("w") as f:
        f.write(json.dumps({"type": "SCHEMA", "stream": "accounts", "key_properties": ["domain"], "schema": {
            "type": "object", "properties": {"domain": {"type": "string"}, "name": {"type": "string"}}}}) + "\n")
        for n, domain in enumerate(domains):
            rec = {"domain": domain, "name": f"a{n}"}
            f.write(json.dumps({"type": "RECORD", "stream": "accounts", "record": rec}) + "\n")
            if (n + 1) % 1000 == 0:
                f.write(json.dumps({"type": "STATE", "value": {"n": n + 1}}) + "\n")
        f.write(json.dumps({"type": "STATE", "value": {"n": len(domains)}}) + "\n")


def startup_s(workdir: Path, config: Path) -> float:
    """Wall time of a run with no records (the target's start-up and shut-down)."""
    empty = workdir / "empty.singer"
    empty.write_text("")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "target_hubspot_upsert", "--config", str(config)],
                   stdin=empty.open(), capture_output=True, check=False)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the case once and print (and optionally write) its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--markdown", type=Path, help="append the result as Markdown to this file")
    args = p.parse_args(argv)
    n = args.records
    existing = [f"acct{i}.example.com" for i in range(0, n, 2)]
    new = [f"acct{i}.example.com" for i in range(1, n, 2)]
    domains = [f"acct{i}.example.com" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, HubSpotSimulator(tokens={TOKEN}, log_bodies=False) as sim:
        workdir = Path(tmp)
        seed(sim, existing)
        time.sleep(10.5)  # the seeding requests leave HubSpot's ten-second window before the run
        sim.configure(rate_limit_per_10s=WRITE_LIMIT, search_rate_limit_per_second=SEARCHES_PER_S,
                      search_index_lag_seconds=LAG_S)
        before = sim.stats
        config = workdir / "config.json"
        config.write_text(json.dumps({
            "access_token": TOKEN, "api_base_url": sim.base_url, "max_requests_per_10_seconds": WRITE_LIMIT,
            "object_mappings": {"accounts": {"object_type": "companies", "match_property": "domain"}},
        }))
        startup = startup_s(workdir, config)
        input_path = workdir / "accounts.singer"
        write_input(input_path, domains)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with input_path.open() as stdin:
            run = subprocess.run([sys.executable, "-m", "target_hubspot_upsert", "--config", str(config)],
                                 stdin=stdin, capture_output=True, check=False)
        wall = time.monotonic() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stats = sim.stats
        endpoints = Counter(e.endpoint for e in sim.requests[len(existing) // 100 :])
        held = Counter(c["properties"]["domain"] for c in sim.objects("companies"))
    states = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    ok = run.returncode == 0 and set(held.values()) == {1} and len(held) == n and states[-1:] == [{"n": n}]
    searches = stats["searches"] - before["searches"]
    rate_limited = stats["rate_limited"] - before["rate_limited"]
    requests_made = stats["requests"] - before["requests"]
    writes = endpoints["batch_update"] + endpoints["batch_create"]
    fastest_search = float((math.ceil(n / 100) - 1) // SEARCHES_PER_S)  # the first second's searches go at once
    # Writes: every update and every create in full requests of 100.
    write_windows = (math.ceil(len(existing) / 100) + math.ceil(len(new) / 100) - 1) // WRITE_LIMIT
    fastest = startup + max(fastest_search, write_windows * 10.0)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    rows = [
        ("records", f"{n:,} ({len(existing):,} existing domains, {len(new):,} new)"),
        ("wall s", f"{wall:.1f}"),
        ("fastest the limits allow, s", (f"{fastest:.1f} (start-up {startup:.1f} s + {math.ceil(n / 100)} searches "
                                          f"at {SEARCHES_PER_S}/s; writes need {write_windows} window(s))")),
        ("ratio (fastest / wall)", f"{fastest / wall:.2f}"),
        ("requests", (f"{requests_made:,}: searches {searches}, batch_update {endpoints['batch_update']}, "
                      f"batch_create {endpoints['batch_create']}, other {requests_made - searches - writes}")),
        ("requests per record", f"{requests_made / n:.4f} (searches {searches / n:.4f}, writes {writes / n:.4f})"),
        ("429s", f"{rate_limited} (SECONDLY {stats['rate_limited_secondly'] - before['rate_limited_secondly']})"),
        ("target CPU s", f"{cpu:.1f}"),
        ("check", "ok" if ok else f"FAIL (exit {run.returncode}, {len(held)} domains, last STATE {states[-1:]})"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write("\n| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    if not ok:
        sys.stderr.write(run.stderr.decode()[-3000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
