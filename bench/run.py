"""Throughput, rate-limit, CPU and memory benchmark of the target against the simulator.

Run from the repository root::

    uv run python bench/run.py                   # every case
    uv run python bench/run.py --quick           # record counts / 10, a fast smoke run
    uv run python bench/run.py --cases 3,4 --markdown bench/results.md
    uv run python bench/run.py --cases 5        # contacts associated with companies

Each case starts a fresh simulator (``python -m hubspot_simulator``) on a
free port with the case's latency and rate limit, generates a Singer input file with
unique e-mails into a temporary directory, and runs the target as a child process
(stdin from the file, stdout and stderr to files). The child's CPU time and peak RSS come
from ``os.wait4``; the 429 count and the maximum concurrency come from the simulator's
``/_sim/stats``. A case FAILs when the target exits non-zero, when the simulator does not
hold exactly one object per contact, or when the last STATE written is not the last
STATE sent. On a machine with 2+ CPUs the target is pinned to one CPU and the simulator
(and this script) to the others, so "CPU µs per record" is the cost on one core.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
WINDOW_S = 10.0  # HubSpot's rolling window
BATCH = 100  # records per batch upsert
STATE_EVERY = 10_000
TARGET_TIMEOUT_S = 3600.0
SCHEMA = {
    "type": "SCHEMA",
    "stream": "contacts",
    "schema": {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "firstname": {"type": ["string", "null"]},
            "lastname": {"type": ["string", "null"]},
        },
    },
    "key_properties": ["email"],
}


@dataclass(frozen=True)
class Case:
    """One benchmark case: input size, simulator behaviour and target config overrides."""

    name: str
    records: int
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    uplink_share: float = 0.0  # share of the latency before the simulator counts a request (--uplink-share)
    sim_limit: int | None = None  # simulator requests per 10 s; None = unlimited
    target_config: dict[str, Any] = field(default_factory=dict)
    cpu_goal_us: float | None = None  # goal: CPU µs per record at most this
    rss_goal_mb: float | None = None  # goal: peak RSS below this
    companies: int = 0  # > 0: loaded first; each contact is associated with company i % companies
    steady_goal: float | None = None  # goal: steady ratio at least this, with no 429

    @property
    def bound(self) -> float | None:
        """Records/s the simulator's rate limit allows in the long run (None = unlimited)."""
        return None if self.sim_limit is None else BATCH * self.sim_limit / WINDOW_S


UNLIMITED = {"max_requests_per_10_seconds": 1_000_000}
CASES: dict[str, Case] = {
    "1": Case("1", 20_000, 250, 50, sim_limit=100),
    "1b": Case("1b", 20_000, 250, 50, sim_limit=100, target_config={"max_concurrent_requests": 1}),
    "2": Case("2", 20_000, 250, 50, sim_limit=190),
    "3": Case("3", 200_000, target_config=UNLIMITED, cpu_goal_us=33.0),
    "4": Case("4", 1_000_000, target_config=UNLIMITED, rss_goal_mb=150.0),
    "5": Case("5", 20_000, 250, 50, sim_limit=100, companies=2_000, target_config={"object_mappings": {
        "contacts": {"associations": [
            {"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"},
        ]},
    }}),
    # The steady ratio over six windows. Half the latency comes before the simulator counts a
    # request, as HubSpot counts on arrival, so a window margin too narrow for it meets 429s.
    "7": Case("7", 60_000, 250, 50, uplink_share=0.5, sim_limit=100, steady_goal=0.985),
}
#: Endpoints HubSpot exempts from the ten-secondly window (the simulator too): the v4 association batches.
EXEMPT_ENDPOINTS = frozenset({"associations_create", "associations_default", "associations_archive",
                              "associations_read"})
#: A 1-record run measuring the target's fixed cost (interpreter, imports, set-up).
STARTUP = Case("start-up", 1, target_config=UNLIMITED)


@dataclass
class Result:
    """What one case measured, and what went wrong."""

    case: Case
    records: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    rate_limited: int = 0
    max_concurrency: int = 0
    steady_ratio: float | None = None
    requests: int = 0  # requests the simulator accepted in the rolling window (429s, exempt ones not counted)
    all_requests: int = 0  # every request the simulator answered, exempt ones included
    associations: int = 0  # associations the simulator holds (cases with companies)
    failures: list[str] = field(default_factory=list)
    by_endpoint: dict[str, int] = field(default_factory=dict)  # requests per simulator endpoint

    @property
    def records_per_s(self) -> float:
        """Records per wall-clock second of the target process."""
        return self.records / self.wall_s if self.wall_s else 0.0

    @property
    def ratio(self) -> float | None:
        """records/s divided by the rate-limit bound (None when unlimited)."""
        bound = self.case.bound
        return None if bound is None else self.records_per_s / bound

    @property
    def cpu_us_per_record(self) -> float:
        """User + system CPU of the target, in µs per record (start-up included)."""
        return 1e6 * self.cpu_s / self.records if self.records else 0.0

    @property
    def rss_mb(self) -> float:
        """Peak resident set size of the target in MiB."""
        return self.maxrss_kb / 1024


# --- CPU placement ------------------------------------------------------------------------


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """CPUs for the target and for the simulator; (None, None) when there is only one."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin a just-started child to ``cpus`` (no-op when not pinning).

    Done right after ``Popen`` rather than in a ``preexec_fn`` (unsafe with threads): the
    child's threads, created later, inherit it.
    """
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


# --- input -------------------------------------------------------------------------------


def write_input(path: Path, n: int, tag: str, companies: int = 0, changed_every: int = 0) -> dict[str, Any]:
    """Write SCHEMA, ``n`` contacts with unique e-mails and periodic STATEs; return the last STATE value.

    With ``companies``, contact ``i`` names company ``co-{i % companies}`` in ``company_ref``.
    With ``changed_every``, every such record has another last name (a changed row of a re-sync).
    """
    dumps = json.dumps
    schema = SCHEMA
    if companies:
        schema = json.loads(dumps(SCHEMA))
        schema["schema"]["properties"]["company_ref"] = {"type": "string"}

    def records() -> Iterator[str]:
        for i in range(1, n + 1):
            last = "Changed" if changed_every and i % changed_every == 0 else "Bench"
            rec = {"email": f"u{i}.{tag}@example.com", "firstname": f"First{i}", "lastname": last}
            if companies:
                rec["company_ref"] = f"co-{i % companies}"
            yield dumps(rec)

    return write_singer(path, schema, records())


def write_singer(path: Path, schema: dict[str, Any], records: Iterable[str]) -> dict[str, Any]:
    """Write ``schema``, then each record (its JSON text) with a STATE every STATE_EVERY records and
    after the last one; return the last STATE value.
    """
    head = '{"type":"RECORD","stream":"' + schema["stream"] + '","record":'
    state: dict[str, Any] = {"bookmark": 0}
    i = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(schema) + "\n")
        for i, rec in enumerate(records, 1):
            fh.write(head + rec + "}\n")
            if i % STATE_EVERY == 0:
                state = {"bookmark": i}
                fh.write(json.dumps({"type": "STATE", "value": state}) + "\n")
        if i % STATE_EVERY:
            state = {"bookmark": i}
            fh.write(json.dumps({"type": "STATE", "value": state}) + "\n")
    return state


def write_companies(path: Path, n: int) -> None:
    """Write a companies stream of ``n`` companies with unique ``company_external_id`` values."""
    schema = {"type": "SCHEMA", "stream": "companies", "key_properties": ["company_external_id"],
              "schema": {"type": "object", "properties": {"company_external_id": {"type": "string"},
                                                          "name": {"type": "string"}}}}
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(schema) + "\n")
        for j in range(n):
            rec = {"company_external_id": f"co-{j}", "name": f"Company {j}"}
            fh.write(json.dumps({"type": "RECORD", "stream": "companies", "record": rec}) + "\n")


#: The realistic contact: 11 fields as a tap emits them, each a different HubSpot property type
#: of the simulator's catalogue (string, phone number, date-time, date, number, bool, enumeration).
CONTACTS_11 = {
    "type": "SCHEMA", "stream": "contacts", "key_properties": ["email"],
    "schema": {"type": "object", "properties": {
        "email": {"type": "string"},
        "firstname": {"type": ["string", "null"]},
        "lastname": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "company": {"type": ["string", "null"]},
        "last_order_at": {"type": ["string", "null"], "format": "date-time"},
        "date_of_birth": {"type": ["string", "null"], "format": "date"},
        "num_orders": {"type": ["integer", "null"]},
        "lifetime_value": {"type": ["number", "null"]},
        "is_vip": {"type": ["boolean", "null"]},
        "lifecyclestage": {"type": ["string", "null"]},
    }},
}
COMPANIES_9 = {
    "type": "SCHEMA", "stream": "companies", "key_properties": ["company_external_id"],
    "schema": {"type": "object", "properties": {
        "company_external_id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "domain": {"type": ["string", "null"]},
        "industry": {"type": ["string", "null"]},
        "numberofemployees": {"type": ["integer", "null"]},
        "annualrevenue": {"type": ["number", "null"]},
        "founded_on": {"type": ["string", "null"], "format": "date"},
        "is_public": {"type": ["boolean", "null"]},
        "description": {"type": ["string", "null"]},
    }},
}
_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
_INDUSTRIES = ("ACCOUNTING", "COMPUTER_SOFTWARE", "FINANCIAL_SERVICES", "RETAIL", "OTHER")


def contact_11(i: int, tag: str) -> dict[str, Any]:
    """Realistic contact ``i``: mixed-case e-mail, date-times with and without an offset, a decimal."""
    zone = "+02:00" if i % 2 else "Z"
    return {
        "email": f"User{i}.{tag}@Example.COM", "firstname": f"First{i}", "lastname": "Lastname",
        "phone": f"+1 555 01{i % 100:02d} {i % 10_000:04d}", "company": f"Company {i % 1000}",
        "last_order_at": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}"
                         f".{i % 1000:03d}{zone}",
        "date_of_birth": f"19{50 + i % 50}-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
        "num_orders": i % 500, "lifetime_value": float(f"{i % 100_000}.{i % 97 + 1:02d}"),
        "is_vip": i % 7 == 0, "lifecyclestage": _STAGES[i % len(_STAGES)],
    }


def company_9(i: int, tag: str) -> dict[str, Any]:
    """Realistic company ``i``: integers, a decimal, a date, a bool, an enumeration."""
    return {
        "company_external_id": f"co-{tag}-{i}", "name": f"Company {i}", "domain": f"company{i}.example.com",
        "industry": _INDUSTRIES[i % len(_INDUSTRIES)], "numberofemployees": i % 5000 + 1,
        "annualrevenue": float(f"{i * 37 % 10_000_000}.{i % 89 + 10}"),
        "founded_on": f"{1900 + i % 120}-{i % 12 + 1:02d}-{i % 28 + 1:02d}", "is_public": i % 3 == 0,
        "description": f"Company {i} makes things and sells them to other companies.",
    }


def write_realistic(path: Path, n: int, tag: str, stream: str) -> dict[str, Any]:
    """Write a realistic ``contacts`` or ``companies`` input (STATE every 10,000); return the last STATE."""
    schema, make = (CONTACTS_11, contact_11) if stream == "contacts" else (COMPANIES_9, company_9)
    return write_singer(path, schema, (json.dumps(make(i, tag), separators=(",", ":")) for i in range(1, n + 1)))


# --- simulator ---------------------------------------------------------------------------

#: Counts the objects of ``GET /_sim/objects/...`` (the simulator has no count endpoint). It
#: runs in its own interpreter because a million objects take ~2 GB to parse, and Linux
#: carries a parent's peak RSS over fork/exec into every child's ``ru_maxrss``: were this
#: script to grow that big, every target started afterwards would report its peak.
COUNT_OBJECTS = (
    "import json, sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=600) as resp:\n"
    "    print(len(json.load(resp)['results']))\n"
)


class Simulator:
    """The HubSpot simulator as a child process, started with one case's flags."""

    def __init__(self, workdir: Path, case: Case | CacheCase | FloorCase, cpus: set[int] | None) -> None:
        """Start it and wait until it has written its URL."""
        url_file = workdir / f"sim-{case.name}.url"
        url_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "hubspot_simulator", "--port", "0",
                "--token", TOKEN, "--no-log-bodies", "--url-file", str(url_file),
                "--latency-ms", str(case.latency_ms), "--jitter-ms", str(case.jitter_ms)]
        if case.sim_limit is not None:
            args += ["--rate-limit", str(case.sim_limit)]
        if isinstance(case, Case) and case.uplink_share:
            args += ["--uplink-share", str(case.uplink_share)]
        self._log = (workdir / f"sim-{case.name}.log").open("w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        pin(self.proc.pid, cpus)
        self.url = self._wait_for_url(url_file)

    def _wait_for_url(self, url_file: Path, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if url_file.exists():
                return url_file.read_text().strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"simulator did not start (see {self._log.name})")

    def get(self, path: str, timeout_s: float = 300.0) -> Any:
        """GET a ``/_sim/...`` control endpoint and return its JSON."""
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
            return json.load(resp)

    def count_objects(self, object_type: str = "contacts") -> int:
        """Number of stored objects, counted in a separate interpreter (see COUNT_OBJECTS)."""
        url = f"{self.url}/_sim/objects/{object_type}"
        done = subprocess.run([sys.executable, "-c", COUNT_OBJECTS, url], capture_output=True,
                              text=True, timeout=900, check=True)
        return int(done.stdout)

    def stop(self) -> None:
        """SIGTERM it and wait (kill after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --- target ------------------------------------------------------------------------------


@dataclass
class TargetRun:
    """Exit status and resource usage of one target process."""

    returncode: int
    wall_s: float
    rusage: Any  # resource.struct_rusage
    inherited_maxrss_kb: int  # this script's peak RSS when it started the target

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of the process (all its threads)."""
        return float(self.rusage.ru_utime + self.rusage.ru_stime)


def run_target(config: Path, input_path: Path, out: Path, err: Path, cpus: set[int] | None) -> TargetRun:
    """Run the target on ``input_path``; measure wall time and ``os.wait4`` resource usage."""
    args = [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config)]
    return run_program(args, input_path, out, err, cpus)


def run_program(args: list[str], input_path: Path, out: Path, err: Path, cpus: set[int] | None) -> TargetRun:
    """Run ``args`` on ``input_path``; measure wall time and ``os.wait4`` resource usage."""
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # a floor of the child's ru_maxrss
    with input_path.open("rb") as stdin, out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr)
        pin(proc.pid, cpus)
        killer = threading.Timer(TARGET_TIMEOUT_S, proc.kill)
        killer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen consistent
    return TargetRun(proc.returncode, wall, rusage, inherited)


def write_config(path: Path, sim_url: str, overrides: dict[str, Any]) -> None:
    """Write the target's config: token and simulator URL, plus the case's settings."""
    config = {"access_token": TOKEN, "api_base_url": sim_url, **overrides}
    path.write_text(json.dumps(config))


def last_state(out: Path) -> Any:
    """The value of the last STATE line the target wrote to stdout (None if none)."""
    value = None
    with out.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
    return value


# --- measurements ------------------------------------------------------------------------


def steady_state_ratio(starts: list[float], limit: int) -> float | None:
    """Long-run rate relative to the bound, from the arrival times of accepted requests.

    A rolling window of ``limit`` per ``WINDOW_S`` means request ``k + limit`` may not arrive
    before request ``k`` leaves the window: ``t[k+limit] - t[k] >= WINDOW_S``. The mean of
    those gaps is the time the target takes to reuse a slot, so ``WINDOW_S / mean(gap)`` is
    its steady-state rate over the bound (1.0 = every slot reused as soon as it frees up),
    without the burst of the first window. None when fewer than ``limit + 1`` requests.
    """
    t = sorted(starts)
    gaps = [t[k + limit] - t[k] for k in range(len(t) - limit)]
    return WINDOW_S / statistics.fmean(gaps) if gaps else None


def check(result: Result, sim: Simulator, run: TargetRun, out: Path, err: Path, expected_state: Any) -> None:
    """Append a message to ``result.failures`` for each thing the run got wrong."""
    if run.returncode != 0:
        result.failures.append(f"target exited with {run.returncode} (stderr: {err})")
    objects = sim.count_objects("contacts")
    if objects != result.records:
        result.failures.append(f"simulator holds {objects} contacts, expected {result.records}")
    got = last_state(out)
    if got != expected_state:
        result.failures.append(f"last STATE written {got!r}, expected {expected_state!r}")
    if result.case.companies:
        links = sim.get("/_sim/associations/contacts/companies")["results"]
        result.associations = len(links)
        if len(links) != result.records:
            result.failures.append(
                f"simulator holds {len(links)} contact-company associations, expected {result.records}"
            )
    if run.rusage.ru_maxrss <= run.inherited_maxrss_kb:
        result.failures.append(f"peak RSS not measurable: the target's ru_maxrss equals this script's own "
                               f"peak ({run.inherited_maxrss_kb / 1024:.1f} MB), which Linux carries into children")


def preload_companies(case: Case, sim: Simulator, workdir: Path, cpus: tuple[set[int] | None, set[int] | None]) -> int:
    """Load the case's companies with a first target run (not measured); return the last logged request's seq.

    Then wait one window, so the measured run starts with HubSpot's rolling window empty.
    """
    path = workdir / f"case-{case.name}.companies.singer"
    write_companies(path, case.companies)
    config = workdir / f"case-{case.name}.companies.config.json"
    write_config(config, sim.url, {"object_mappings": {"companies": {"id_property": "company_external_id"}}})
    out, err = workdir / f"case-{case.name}.companies.stdout", workdir / f"case-{case.name}.companies.stderr"
    run = run_target(config, path, out, err, cpus[0])
    path.unlink(missing_ok=True)
    if run.returncode != 0 or sim.count_objects("companies") != case.companies:
        raise RuntimeError(f"loading {case.companies} companies failed (see {err})")
    log = sim.get("/_sim/requests")["results"]
    time.sleep(WINDOW_S + 0.5)
    return max((e["seq"] for e in log), default=0)


def run_case(case: Case, records: int, workdir: Path, cpus: tuple[set[int] | None, set[int] | None]) -> Result:
    """Generate the input, start a simulator, run the target, measure and check."""
    input_path = workdir / f"case-{case.name}.singer"
    expected_state = write_input(input_path, records, f"c{case.name}", case.companies)
    result = Result(case, records)
    sim = Simulator(workdir, case, cpus[1])
    try:
        since = preload_companies(case, sim, workdir, cpus) if case.companies else 0
        config = workdir / f"case-{case.name}.config.json"
        write_config(config, sim.url, case.target_config)
        out, err = workdir / f"case-{case.name}.stdout", workdir / f"case-{case.name}.stderr"
        run = run_target(config, input_path, out, err, cpus[0])
        result.wall_s = run.wall_s
        result.cpu_s = run.cpu_s
        result.maxrss_kb = run.rusage.ru_maxrss
        stats = sim.get("/_sim/stats")
        result.rate_limited = stats["rate_limited"]
        result.max_concurrency = stats["max_concurrent_upserts"]
        if case.sim_limit is not None:
            # Every request counts in HubSpot's window (the properties GET too), except 429s and
            # the v4 association batches HubSpot exempts from it.
            log = sim.get(f"/_sim/requests?since={since}")["results"]
            starts = [e["started"] for e in log if e["status"] != 429 and e["endpoint"] not in EXEMPT_ENDPOINTS]
            result.requests = len(starts)
            result.all_requests = len(log)
            result.by_endpoint = dict(Counter(e["endpoint"] for e in log))
            result.steady_ratio = steady_state_ratio(starts, case.sim_limit)
        check(result, sim, run, out, err, expected_state)
    finally:
        sim.stop()
    input_path.unlink(missing_ok=True)
    return result


# --- change cache (skip_unchanged) -------------------------------------------------------


@dataclass(frozen=True)
class CacheCase:
    """A re-sync with ``skip_unchanged``: run 1 loads the records, run 2 sends the same ids again.

    In run 2 every ``changed_every``-th record has a new last name (0: none changed). Both runs use
    the same simulator (what HubSpot holds) and the same cache file.
    """

    name: str
    records: int
    changed_every: int
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    sim_limit: int | None = None
    target_config: dict[str, Any] = field(default_factory=dict)
    ratio_goal: float | None = None  # run 1 / run 2 at least this
    first_syncs: int = 1  # run 1 repeated, each into a new cache file (the last one is kept)


CACHE_CASES: dict[str, CacheCase] = {
    "6": CacheCase("6", 200_000, 100, 250, 50, sim_limit=100, ratio_goal=50.0),
    "3c": CacheCase("3c", 200_000, 0, target_config=UNLIMITED, first_syncs=3),
}
# Run 2 is repeated: a re-sync is CPU-bound and short, so other work on the machine can slow one
# of them by half; the notes judge the goals on the fastest (all of them are in the table).
RESYNCS = 3
CACHE_LOOKUP_GOAL_US = 5.0  # hashing and look-ups per record, on the CPU-bound case (3c)
_CACHE_LINE = re.compile(r"Change cache CPU: ([0-9.]+) µs per input looked up .*?, ([0-9.]+|-) µs per entry written")
_UNCHANGED = re.compile(r"unchanged (\d+)[,;]")


@dataclass
class CacheRun:
    """One run of a cache case."""

    label: str
    records: int
    changed: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    requests: int = 0  # every request the simulator logged (properties and account look-ups too)
    upserts: int = 0
    unchanged: int | None = None
    lookup_us: float | None = None  # the target's own figure: cache CPU per input looked up
    write_us: float | None = None  # and per entry written
    failures: list[str] = field(default_factory=list)
    first: bool = False  # a first sync (run 1)

    @property
    def cpu_us_per_record(self) -> float:
        """User + system CPU of the target per record (start-up included)."""
        return 1e6 * self.cpu_s / self.records if self.records else 0.0


def _read_cache_log(run: CacheRun, err: Path) -> None:
    text = err.read_text(encoding="utf-8", errors="replace")
    if match := _CACHE_LINE.search(text):
        run.lookup_us = float(match.group(1))
        run.write_us = None if match.group(2) == "-" else float(match.group(2))
    if match := _UNCHANGED.search(text):
        run.unchanged = int(match.group(1))


def _cache_run(case: CacheCase, run_no: int, records: int, sim: Simulator, config: Path, workdir: Path,
               cpus: set[int] | None, repeat: int = 0) -> CacheRun:
    """Run 1 (first sync), or re-sync number ``repeat`` (0-based) of run 2.

    Re-syncs alternate the changed records' last name (changed, back, changed, ...), so each one
    changes the same records again.
    """
    tag = f"c{case.name}"
    every = case.changed_every if run_no == 2 else 0
    changed = {f"u{i}.{tag}@example.com" for i in range(1, records + 1) if every and i % every == 0}
    if repeat % 2:
        every = 0  # back to the first sync's values
    numbered = f"{run_no}.{repeat + 1}" if run_no == 2 or case.first_syncs > 1 else f"{run_no}"
    label = f"{numbered}: first sync" if run_no == 1 else f"{numbered}: re-sync, {len(changed):,} changed"
    result = CacheRun(label, records, records if run_no == 1 else len(changed), first=run_no == 1)
    name = f"case-{case.name}-{numbered}"
    input_path = workdir / f"{name}.singer"
    expected_state = write_input(input_path, records, tag, changed_every=every)
    # Counts from the simulator's counters; ids only of run 2's few requests: this script stays
    # small, since Linux carries its peak RSS into every target started afterwards.
    before = sim.get("/_sim/stats")
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    run = run_target(config, input_path, out, err, cpus)
    input_path.unlink(missing_ok=True)
    result.wall_s, result.cpu_s, result.maxrss_kb = run.wall_s, run.cpu_s, run.rusage.ru_maxrss
    after = sim.get("/_sim/stats")
    result.requests = after["requests"] - before["requests"]
    result.upserts = after["upserts"] - before["upserts"]
    _read_cache_log(result, err)
    if run_no == 2:
        log = sim.get(f"/_sim/requests?upserts_only=1&since={before['requests']}")["results"]
        if {i for e in log if e["status"] == 200 for i in e["ids"]} != changed:
            result.failures.append("run 2 did not send exactly the changed records")
    if run.returncode != 0:
        result.failures.append(f"target exited with {run.returncode} (stderr: {err})")
    got = last_state(out)
    if got != expected_state:
        result.failures.append(f"last STATE written {got!r}, expected {expected_state!r}")
    if sim.count_objects("contacts") != records:
        result.failures.append(f"simulator does not hold {records} contacts")
    return result


def run_cache_case(case: CacheCase, records: int, workdir: Path,
                   cpus: tuple[set[int] | None, set[int] | None]) -> list[CacheRun]:
    """Start a simulator and run the target twice on it with skip_unchanged and one cache file."""
    sim = Simulator(workdir, case, cpus[1])
    try:
        config = workdir / f"case-{case.name}.config.json"
        cache_path = workdir / f"case-{case.name}.sqlite"
        write_config(config, sim.url, {**case.target_config, "skip_unchanged": True,
                                       "change_cache_path": str(cache_path)})
        runs = []
        for repeat in range(case.first_syncs):
            _remove_cache(cache_path)  # every first sync starts from an empty cache
            runs.append(_cache_run(case, 1, records, sim, config, workdir, cpus[0], repeat))
        runs += [_cache_run(case, 2, records, sim, config, workdir, cpus[0], r) for r in range(RESYNCS)]
    finally:
        sim.stop()
    _remove_cache(cache_path)
    return runs


def _remove_cache(cache_path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{cache_path}{suffix}").unlink(missing_ok=True)


CACHE_HEADERS = ["case", "run", "records", "changed", "requests", "upserts", "unchanged", "wall s",
                 "CPU µs/rec", "cache µs/look-up", "cache µs/write", "peak RSS MB", "check"]


def cache_rows(results: dict[str, list[CacheRun]]) -> list[list[str]]:
    """One row per run of each cache case, in CACHE_HEADERS order."""
    return [[name, r.label, f"{r.records:,}", f"{r.changed:,}", f"{r.requests:,}", f"{r.upserts:,}",
             "-" if r.unchanged is None else f"{r.unchanged:,}", f"{r.wall_s:.1f}", f"{r.cpu_us_per_record:.1f}",
             _fmt(r.lookup_us, ".2f"), _fmt(r.write_us, ".2f"), f"{r.maxrss_kb / 1024:.1f}",
             "FAIL" if r.failures else "ok"] for name, runs in results.items() for r in runs]


def cache_notes(results: dict[str, list[CacheRun]], plain: dict[str, Result]) -> list[str]:
    """Run 1 / run 2 ratios, what the cache costs per record, and failures."""
    lines: list[str] = []
    for name, runs in results.items():
        case = CACHE_CASES[name]
        firsts, resyncs = [r for r in runs if r.first], [r for r in runs if not r.first]
        first = min(firsts, key=lambda r: r.cpu_s)  # the least disturbed first sync
        second = min(resyncs, key=lambda r: r.wall_s)  # the least disturbed re-sync
        walls = ", ".join(f"{r.wall_s:.1f}" for r in resyncs)
        if case.ratio_goal is not None and second.requests and second.wall_s:
            req, wall = first.requests / second.requests, first.wall_s / second.wall_s
            verdict = "met" if min(req, wall) >= case.ratio_goal else "MISSED"
            lines.append(
                f"case {name}: run 1 / run 2: requests {first.requests:,} / {second.requests:,} = {req:.0f}x, "
                f"wall {first.wall_s:.1f} s / {second.wall_s:.1f} s = {wall:.1f}x, the fastest of {len(resyncs)} "
                f"re-syncs ({walls} s) (goal: run 2 under 1/{case.ratio_goal:g} of run 1): {verdict}"
            )
        new = [r.lookup_us for r in firsts if r.lookup_us is not None]
        found = [r.lookup_us for r in resyncs if r.lookup_us is not None]
        written = [r.write_us for r in firsts if r.write_us is not None]
        if new and found:
            lines.append(
                f"case {name}: the change cache's own CPU (measured by the target per thread): "
                f"{min(new):.2f} µs per record looked up when all are new (first syncs: {_join(new)}), "
                f"{min(found):.2f} µs when all are found (re-syncs: {_join(found)}); "
                f"{_fmt(min(written, default=None), '.2f')} µs per entry written, once per changed record "
                f"(first syncs: {_join(written)})"
            )
            if name == "3c":
                worst = max(min(new), min(found))
                verdict = "met" if worst <= CACHE_LOOKUP_GOAL_US else "MISSED"
                lines.append(
                    f"case 3c: hashing and look-ups cost at most {worst:.2f} µs per record "
                    f"(goal <= {CACHE_LOOKUP_GOAL_US:g}): {verdict}"
                )
        base = plain.get("3")
        if name == "3c" and base is not None:
            delta = first.cpu_us_per_record - base.cpu_us_per_record
            lines.append(
                f"case 3c run 1 (the fastest first sync: every record sent, cache on) CPU "
                f"{first.cpu_us_per_record:.1f} µs/record vs "
                f"case 3 (cache off) {base.cpu_us_per_record:.1f}: {delta:+.1f} µs/record; "
                f"run 2 (every record unchanged) {min(r.cpu_us_per_record for r in resyncs):.1f} µs/record"
            )
        lines += [f"FAIL case {name} run {r.label}: {msg}" for r in runs for msg in r.failures]
    return lines


# --- the realistic cases and their floor --------------------------------------------------

FLOOR = Path(__file__).resolve().parent / "floor.py"
REPEATS = 5  # interleaved runs of the target and the floor per realistic case


@dataclass(frozen=True)
class FloorCase:
    """A realistic input, loaded by the target and by the floor program (``floor.py``) in turn.

    Both run on the same input against the same simulator (no latency, no limit), pinned to the
    same CPU, ``repeats`` times interleaved; CPU per record is net of each program's start-up
    (the median of a 1-record run of each, measured in every repetition).
    """

    name: str
    records: int
    stream: str  # contacts (11 fields) or companies (9 fields)
    id_property: str
    resync: bool = False  # also time a skip_unchanged re-sync in which nothing changed
    # ... over this many times the records: a re-sync costs a few µs per record against ~0.45 s
    # of start-up, so the start-up it is net of (measured apart, and as noisy as any run) would
    # otherwise weigh more than the records themselves
    resync_scale: int = 3
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    sim_limit: int | None = None
    ratio_goal: float = 1.5  # target ÷ floor, medians
    resync_goal_us: float = 5.0


FLOOR_CASES: dict[str, FloorCase] = {
    "r": FloorCase("r", 100_000, "contacts", "email", resync=True),
    "rc": FloorCase("rc", 50_000, "companies", "company_external_id"),
}


@dataclass
class FloorResult:
    """CPU per record (net of start-up) of each repetition, and what went wrong."""

    case: FloorCase
    records: int
    target_us: list[float] = field(default_factory=list)
    floor_us: list[float] = field(default_factory=list)
    resync_us: list[float] = field(default_factory=list)
    resync_records: int = 0
    startup_s: dict[str, float] = field(default_factory=dict)  # median start-up CPU per program
    failures: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Median target ÷ median floor."""
        if not self.target_us or not self.floor_us:
            return None
        return statistics.median(self.target_us) / statistics.median(self.floor_us)


def run_floor_case(case: FloorCase, records: int, workdir: Path, cpus: tuple[set[int] | None, set[int] | None],
                   repeats: int) -> FloorResult:
    """Run the target, the floor (and the target's re-sync) ``repeats`` times, interleaved, on one input."""
    result = FloorResult(case, records)
    tag = f"c{case.name}"
    input_path, one = workdir / f"case-{case.name}.singer", workdir / f"case-{case.name}.one.singer"
    resync_path = workdir / f"case-{case.name}.resync.singer"
    expected = write_realistic(input_path, records, tag, case.stream)
    write_realistic(one, 1, tag, case.stream)  # the first record again: start-up, nothing new
    resync_records = records * case.resync_scale if case.resync else 0
    if case.resync:
        resync_expected = write_realistic(resync_path, resync_records, tag, case.stream)  # begins with input_path's
    sim = Simulator(workdir, case, cpus[1])
    cache = workdir / f"case-{case.name}.sqlite"
    try:
        mapping = {"object_mappings": {case.stream: {"id_property": case.id_property}}}
        plain, resync = workdir / f"case-{case.name}.config.json", workdir / f"case-{case.name}.resync.json"
        write_config(plain, sim.url, {**UNLIMITED, **mapping})
        write_config(resync, sim.url, {**UNLIMITED, **mapping, "skip_unchanged": True,
                                       "change_cache_path": str(cache)})
        target = [sys.executable, "-m", "target_hubspot_upsert", "--config"]
        # name -> (command, its input, the last STATE it must write, its records)
        programs = {"target": ([*target, str(plain)], input_path, expected, records),
                    "floor": ([sys.executable, str(FLOOR), "--url", sim.url, "--token", TOKEN,
                               "--object", case.stream, "--id-property", case.id_property],
                              input_path, expected, records)}
        if case.resync:
            programs["re-sync"] = ([*target, str(resync)], resync_path, resync_expected, resync_records)
            _floor_run(result, "first-sync", programs["re-sync"][0], resync_path, resync_expected, workdir, cpus[0])
        full: dict[str, list[float]] = {name: [] for name in programs}
        startup: dict[str, list[float]] = {name: [] for name in programs}
        for repeat in range(repeats):
            order = list(programs) if repeat % 2 == 0 else list(reversed(programs))
            for name in order:
                args, path, last, _n = programs[name]
                full[name].append(_floor_run(result, name, args, path, last, workdir, cpus[0]))
            for name in order:
                args = programs[name][0]
                startup[name].append(_floor_run(result, name, args, one, {"bookmark": 1}, workdir, cpus[0]))
        result.startup_s = {name: statistics.median(v) for name, v in startup.items()}
        net = {name: [1e6 * (cpu - result.startup_s[name]) / (programs[name][3] - 1) for cpu in v]
               for name, v in full.items()}
        result.target_us, result.floor_us = net["target"], net["floor"]
        result.resync_us = net.get("re-sync", [])
        result.resync_records = resync_records
        if (held := sim.count_objects(case.stream)) != max(records, resync_records):
            result.failures.append(f"simulator holds {held} {case.stream}, expected {max(records, resync_records)}")
    finally:
        sim.stop()
    for path in (input_path, one, resync_path):
        path.unlink(missing_ok=True)
    _remove_cache(cache)
    return result


def _floor_run(result: FloorResult, name: str, args: list[str], input_path: Path, expected: Any,
               workdir: Path, cpus: set[int] | None) -> float:
    """One run of one program; its CPU seconds (failures appended to ``result``)."""
    out, err = workdir / f"case-{result.case.name}-{name}.stdout", workdir / f"case-{result.case.name}-{name}.stderr"
    run = run_program(args, input_path, out, err, cpus)
    if run.returncode != 0:
        result.failures.append(f"{name} exited with {run.returncode} (stderr: {err})")
    if (got := last_state(out)) != expected:
        result.failures.append(f"{name}: last STATE written {got!r}, expected {expected!r}")
    return run.cpu_s


FLOOR_HEADERS = ["case", "records", "runs", "target µs/rec", "floor µs/rec", "target ÷ floor",
                 "re-sync µs/rec", "check"]


def _spread(values: list[float]) -> str:
    """min / median / max."""
    if not values:
        return "-"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def floor_rows(results: Iterable[FloorResult]) -> list[list[str]]:
    """One row per realistic case, in FLOOR_HEADERS order (µs: min / median / max)."""
    return [[f"{r.case.name}: {r.case.stream}", f"{r.records:,}", str(len(r.target_us)), _spread(r.target_us),
             _spread(r.floor_us), _fmt(r.ratio, ".2f"), _spread(r.resync_us), "FAIL" if r.failures else "ok"]
            for r in results]


def floor_notes(results: Iterable[FloorResult]) -> list[str]:
    """Goals, start-ups and failures of the realistic cases."""
    lines: list[str] = []
    for r in results:
        case = r.case
        starts = ", ".join(f"{name} {s:.2f} s" for name, s in r.startup_s.items())
        lines.append(f"case {case.name}: CPU per record net of start-up (median CPU of a 1-record run: {starts}), "
                     f"all threads, every program on the same CPU; min / median / max of {len(r.target_us)} "
                     f"interleaved runs")
        if r.ratio is not None:
            per_run = [t / f for t, f in zip(r.target_us, r.floor_us, strict=True) if f > 0]
            verdict = "met" if r.ratio <= case.ratio_goal else "MISSED"
            lines.append(f"case {case.name}: target ÷ floor {r.ratio:.2f} (medians; per run {_spread(per_run)}), "
                         f"goal <= {case.ratio_goal:g}: {verdict}")
        if r.resync_us:
            median = statistics.median(r.resync_us)
            verdict = "met" if median <= case.resync_goal_us else "MISSED"
            lines.append(f"case {case.name}: skip_unchanged re-sync of {r.resync_records:,} records, nothing "
                         f"changed: {median:.1f} µs/record (median), goal <= {case.resync_goal_us:g}: {verdict}")
        lines += [f"FAIL case {case.name}: {msg}" for msg in r.failures]
    return lines


# --- report ------------------------------------------------------------------------------

HEADERS = ["case", "records", "wall s", "records/s", "bound rec/s", "ratio", "steady ratio",
           "429s", "max conc", "CPU µs/rec", "peak RSS MB", "check"]


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_rows(results: Iterable[Result]) -> list[list[str]]:
    """One row of formatted cells per result, in HEADERS order."""
    return [[r.case.name, f"{r.records:,}", f"{r.wall_s:.1f}", f"{r.records_per_s:,.0f}",
             _fmt(r.case.bound, ",.0f"), _fmt(r.ratio, ".2f"), _fmt(r.steady_ratio, ".2f"),
             str(r.rate_limited), str(r.max_concurrency), f"{r.cpu_us_per_record:.1f}",
             f"{r.rss_mb:.1f}", "FAIL" if r.failures else "ok"] for r in results]


def text_table(rows: list[list[str]], headers: list[str] = HEADERS) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def markdown_table(rows: list[list[str]], headers: list[str] = HEADERS) -> str:
    """Rows as a GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def notes(results: list[Result], startup: Result | None) -> list[str]:
    """Lines printed under the table: speed-up of concurrency, start-up cost, goals, failures."""
    by_name = {r.case.name: r for r in results}
    lines: list[str] = []
    if startup is not None:
        lines.append(f"target start-up (a 1-record run): {startup.cpu_s:.2f} s CPU, "
                     f"{startup.wall_s:.2f} s wall, peak RSS {startup.rss_mb:.1f} MB")
        lines += [f"FAIL start-up run: {msg}" for msg in startup.failures]
    for r in results:
        if startup is not None and r.case.sim_limit is not None and r.requests and r.case.bound:
            # No client can beat this: start-up, then request k + limit no earlier than one
            # window after request k, then the last answer's latency.
            windows = (r.requests - 1) // r.case.sim_limit
            # The last batch's answers one after the other: its upsert; with associations, the
            # association request, after a batch/read when its companies were never looked up.
            chain = 1 + (1 if r.case.companies else 0) + (1 if 0 < r.records <= r.case.companies else 0)
            best_s = startup.wall_s + windows * WINDOW_S + chain * r.case.latency_ms / 1000
            best_ratio = r.records / best_s / r.case.bound
            plural = "" if windows == 1 else "s"
            lines.append(
                f"case {r.case.name}: fastest run possible {best_s:.1f} s (start-up {startup.wall_s:.2f} s + "
                f"{windows} window{plural} for {r.requests} requests + latency), ratio {best_ratio:.2f}; "
                f"measured {r.ratio:.2f} = {r.wall_s and best_s / r.wall_s:.2f} of it"
            )
    for r in results:
        if r.case.companies and r.all_requests:
            parts = ", ".join(f"{name} {n}" for name, n in sorted(r.by_endpoint.items(), key=lambda kv: -kv[1]))
            lines.append(
                f"case {r.case.name}: {r.all_requests / r.records:.4f} requests per record ({r.all_requests} requests: "
                f"{parts}); {r.requests / r.records:.4f} per record in the rolling window "
                f"(association batches are exempt); {r.associations:,} associations"
            )
    if "1" in by_name and "1b" in by_name and by_name["1b"].records_per_s:
        speedup = by_name["1"].records_per_s / by_name["1b"].records_per_s
        lines.append(f"case 1 / case 1b records/s: {speedup:.2f}x")
    for r in results:
        goal = r.case.cpu_goal_us
        if goal is not None:
            verdict = "met" if r.cpu_us_per_record <= goal else "MISSED"
            lines.append(f"case {r.case.name}: CPU {r.cpu_us_per_record:.1f} µs/record, goal <= {goal:g}: {verdict}")
            if startup is not None and r.records > startup.records:
                net = 1e6 * (r.cpu_s - startup.cpu_s) / (r.records - startup.records)
                lines.append(f"case {r.case.name}: CPU excluding start-up {net:.1f} µs/record")
        goal = r.case.steady_goal
        if goal is not None and r.steady_ratio is not None:
            verdict = "met" if r.steady_ratio >= goal and not r.rate_limited else "MISSED"
            lines.append(f"case {r.case.name}: steady ratio {r.steady_ratio:.3f} of the bound over {r.records:,} "
                         f"records, {r.rate_limited} 429s, goal >= {goal:g} with no 429: {verdict}")
        goal = r.case.rss_goal_mb
        if goal is not None:
            verdict = "met" if r.rss_mb < goal else "MISSED"
            lines.append(f"case {r.case.name}: peak RSS {r.rss_mb:.1f} MB, goal < {goal:g}: {verdict}")
        lines += [f"FAIL case {r.case.name}: {msg}" for msg in r.failures]
    return lines


# --- command line ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    every = [*CASES, *CACHE_CASES, *FLOOR_CASES]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(every), help=f"comma-separated cases (default {','.join(every)})")
    p.add_argument("--quick", action="store_true", help="scale record counts down 10x (smoke run)")
    p.add_argument("--repeats", type=int, default=REPEATS, metavar="N",
                   help=f"interleaved runs of target and floor per realistic case (default {REPEATS})")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table as Markdown")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (logs, outputs); kept anyway when a case fails")
    args = p.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in every]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    return args


@dataclass
class Selected:
    """What the selected cases measured."""

    results: list[Result] = field(default_factory=list)
    cached: dict[str, list[CacheRun]] = field(default_factory=dict)
    floors: list[FloorResult] = field(default_factory=list)
    startup: Result | None = None

    @property
    def failed(self) -> bool:
        """Whether any case failed."""
        return (any(r.failures for r in self.results) or bool(self.startup and self.startup.failures)
                or any(r.failures for runs in self.cached.values() for r in runs)
                or any(r.failures for r in self.floors))


def run_selected(args: argparse.Namespace, workdir: Path, cpus: tuple[set[int] | None, set[int] | None]) -> Selected:
    """Run every selected case, then the start-up run when a note needs it."""
    scale = 10 if args.quick else 1
    selected = Selected()
    results, cached = selected.results, selected.cached
    for name in args.case_list:
        spec = CASES.get(name) or CACHE_CASES.get(name) or FLOOR_CASES[name]
        records = max(2, spec.records // scale)
        print(f"case {name}: {records:,} records ...", file=sys.stderr, flush=True)
        if name in FLOOR_CASES:
            start = time.perf_counter()
            selected.floors.append(run_floor_case(FLOOR_CASES[name], records, workdir, cpus, args.repeats))
            failed, wall = bool(selected.floors[-1].failures), time.perf_counter() - start
        elif name in CACHE_CASES:
            cached[name] = run_cache_case(CACHE_CASES[name], records, workdir, cpus)
            failed, wall = any(r.failures for r in cached[name]), sum(r.wall_s for r in cached[name])
        else:
            results.append(run_case(CASES[name], records, workdir, cpus))
            failed, wall = bool(results[-1].failures), results[-1].wall_s
        print(f"case {name}: {wall:.1f} s{' FAIL' if failed else ''}", file=sys.stderr, flush=True)
    if any(r.case.cpu_goal_us is not None or r.case.sim_limit is not None for r in results):
        selected.startup = run_case(STARTUP, STARTUP.records, workdir, cpus)
    return selected


def compile_bytecode() -> None:
    """Compile the .pyc files of the target and its dependencies, as `pip install` (and uv, with
    the project's `compile-bytecode`) does. Without them a Python that may not write bytecode
    (PYTHONDONTWRITEBYTECODE, a read-only install) compiles ~350 modules at every start: ~0.6 s of
    the target's start-up that no installed target pays.
    """
    # Found, not imported: this script stays small (its peak RSS is carried into every target).
    spec = importlib.util.find_spec("target_hubspot_upsert")
    directories = {sysconfig.get_paths()["purelib"]}
    if spec is not None and spec.origin:
        directories.add(str(Path(spec.origin).parent))
    for directory in directories:
        compileall.compile_dir(directory, quiet=1, workers=0)


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases, print the table; exit 1 if any case failed."""
    args = parse_args(argv)
    compile_bytecode()
    cpus = cpu_split()
    if cpus[1] is not None:
        os.sched_setaffinity(0, cpus[1])  # keep this script off the target's CPU
    workdir = Path(tempfile.mkdtemp(prefix="hubspot-bench-"))
    target_cpus, sim_cpus = cpus
    pinning = (f"target on CPU {sorted(target_cpus)}, simulator on {sorted(sim_cpus)}"
               if target_cpus is not None and sim_cpus is not None else "no CPU pinning")
    print(f"work dir {workdir}; {pinning}", file=sys.stderr)
    selected = run_selected(args, workdir, cpus)
    results, cached = selected.results, selected.cached
    rows, crows, frows = table_rows(results), cache_rows(cached), floor_rows(selected.floors)
    extra = (notes(results, selected.startup) + cache_notes(cached, {r.case.name: r for r in results})
             + floor_notes(selected.floors))
    if rows:
        print(text_table(rows))
    if crows:
        print(text_table(crows, CACHE_HEADERS))
    if frows:
        print(text_table(frows, FLOOR_HEADERS))
    print("\n".join(extra))
    if args.markdown:
        every = args.case_list == [*CASES, *CACHE_CASES, *FLOOR_CASES]
        title = "quick run (records / 10)" if args.quick else "full run" if every else f"cases {args.cases}"
        command = "uv run python bench/run.py" + ("" if every else f" --cases {args.cases}")
        body = [f"Benchmark, {title}: `{command}{' --quick' if args.quick else ''}`", ""]
        body += [markdown_table(rows), ""] if rows else []
        body += ["Change cache (`skip_unchanged`): run 1 loads the records, run 2 re-syncs the same ids.", "",
                 markdown_table(crows, CACHE_HEADERS), ""] if crows else []
        body += [("Realistic inputs: the target and the floor program (`bench/floor.py`), CPU µs per record "
                 "net of start-up, min / median / max."), "", markdown_table(frows, FLOOR_HEADERS), ""] if frows else []
        body += [f"- {line}" for line in extra]
        args.markdown.write_text("\n".join(body) + "\n", encoding="utf-8")
    failed = selected.failed
    if args.keep or failed:
        print(f"work dir kept: {workdir}", file=sys.stderr)
    else:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
