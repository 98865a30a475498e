"""End to end with a real Meltano: the project's meltano.yml, its sample data, the simulator.

Meltano (pinned) is installed once into its own virtualenv, kept between runs in this
checkout's `.cache/meltano-<version>-py<X.Y>` (ignored by git; `HUBSPOT_UPSERT_TEST_MELTANO_VENV`
names another folder). Each checkout has its own, and a lock file beside it makes a second
test run in the same checkout wait while the first installs, so concurrent runs never share
a half-installed Meltano. The test copies meltano.yml, examples/ and the package (so the
loader's `pip_url: -e .` installs this code) into a temporary project, starts the HubSpot
simulator as a separate process, then:

1. `meltano install` and `meltano run sync-hubspot`: every sample record lands;
2. adds an export file that modifies two contacts and adds one, runs again: only those
   three records are sent (the simulator's request log), nothing for the unchanged files;
3. after each run, `meltano state get <state-id>` equals the last STATE line the target
   wrote to stdout (captured by a wrapper around the installed target executable).

A second test adds the loader as a user would, running the README's commands exactly (`meltano
add --from-ref` into the clone with `--no-install`, `pip_url` pointed at the clone, `meltano
install`), pipes records through `meltano invoke`, then pastes the README's `stream_maps` and
logging snippets into `meltano.yml` and checks that each works as the README says.

Needs only the package registry (for Meltano and the plugins); no stdin.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import TOKEN as SIM_TOKEN

pytestmark = pytest.mark.meltano

MELTANO_VERSION = "4.4.1"
ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILE = ROOT / "target-hubspot-upsert.plugin.yml"
TOKEN = "meltano-e2e-token-3b8f0a61"
STATE_IDS = {
    "companies": "dev:tap-companies-jsonl-to-target-hubspot-upsert",
    "contacts": "dev:tap-contacts-jsonl-to-target-hubspot-upsert",
}
CAPTURE_ENV = "HUBSPOT_UPSERT_TEST_STDOUT_DIR"
WRAPPER = f"""#!/usr/bin/env bash
# Installed by tests/test_meltano.py: runs the real target and keeps a copy of its stdout
# (only STATE lines) so the test can compare it with the state Meltano stored.
set -o pipefail
out="${{{CAPTURE_ENV}}}/$(date +%s%N)-$$.jsonl"
"$(dirname "$0")/target-hubspot-upsert.real" "$@" | tee "$out"
"""
VALIDATE_SCRIPT = """
import json, sys
from importlib.resources import files
import jsonschema
schema = json.loads(files("meltano.schemas").joinpath("meltano.schema.json").read_text())
validator = jsonschema.validators.validator_for(schema)(schema)
errors = sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(json.load(sys.stdin)))
print("\\n".join(errors))
sys.exit(1 if errors else 0)
"""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


SAMPLE_CONTACTS = _read_jsonl(ROOT / "examples/data/contacts/export-2024-06-01.jsonl")
SAMPLE_COMPANIES = _read_jsonl(ROOT / "examples/data/companies/export-2024-06-01.jsonl")
# The change between the two runs: a new export file, as a source system would drop it.
CHANGES = [
    {**SAMPLE_CONTACTS[1], "lifecyclestage": "customer", "num_orders": 4},
    {**SAMPLE_CONTACTS[3], "phone": "+1 555 0199", "company": "Semaphore Systems"},
    {"email": "margaret.hamilton@example.com", "firstname": "Margaret", "lastname": "Hamilton",
     "phone": "+1 555 0106", "company": "Apollo Guidance", "lifecyclestage": "lead", "num_orders": 0,
     "date_of_birth": "1936-08-17"},
]


def _as_hubspot(record: dict[str, Any]) -> dict[str, str]:
    """A record's values as HubSpot stores them (strings)."""
    return {k: str(v) for k, v in record.items()}


# -- Meltano ---------------------------------------------------------------------------------


def _meltano_venv_dir() -> Path:
    if override := os.environ.get("HUBSPOT_UPSERT_TEST_MELTANO_VENV"):
        return Path(override)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return ROOT / ".cache" / f"meltano-{MELTANO_VERSION}-py{py}"


def _check(cmd: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False, **kwargs,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def meltano_bin() -> Iterator[Path]:
    """The meltano executable of a cached virtualenv with Meltano installed."""
    venv = _meltano_venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Held for the whole module: another run in this checkout waits instead of reinstalling
    # the virtualenv under this one. Named after the folder so that an override gets its own.
    digest = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:12]
    with (venv.parent / f".meltano-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _installed_meltano(venv)


def _installed_meltano(venv: Path) -> Path:
    exe, python, marker = venv / "bin" / "meltano", venv / "bin" / "python", venv / ".installed"
    if exe.exists() and marker.exists() and marker.read_text().strip() == MELTANO_VERSION:
        return exe
    shutil.rmtree(venv, ignore_errors=True)  # absent, or a previous install did not finish
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    if uv := shutil.which("uv"):
        _check([uv, "venv", "--quiet", "--python", base_python, str(venv)], timeout=120, env=env)
        _check([uv, "pip", "install", "--quiet", "--python", str(python), f"meltano=={MELTANO_VERSION}"],
               timeout=900, env=env)
    else:
        _check([base_python, "-m", "venv", str(venv)], timeout=120, env=env)
        _check([str(python), "-m", "pip", "install", "--quiet", f"meltano=={MELTANO_VERSION}"], timeout=900, env=env)
    version = _check([str(exe), "--version"], timeout=120, env=env).stdout
    assert MELTANO_VERSION in version, version
    marker.write_text(MELTANO_VERSION)
    return exe


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Path]:
    """A copy of the Meltano project with the package, so `pip_url: -e .` installs this code."""
    dest = tmp_path_factory.mktemp("meltano-project")
    for name in ("meltano.yml", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "examples", dest / "examples")
    # The simulator is a member of the project's uv workspace, so a build of the copy needs it.
    for package in ("target_hubspot_upsert", "simulator"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "logs").mkdir()
    (dest / "captured-stdout").mkdir()
    yield dest
    # The plugin virtualenvs are large; the logs and captured output stay for inspection.
    shutil.rmtree(dest / ".meltano", ignore_errors=True)


@pytest.fixture(scope="module")
def sim_url(project) -> Iterator[str]:
    """The simulator, running as its own process like a remote HubSpot."""
    url_file = project / "simulator.url"
    log = (project / "logs" / "simulator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubspot_simulator", "--port", "0", "--token", TOKEN,
         "--url-file", str(url_file)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            assert proc.poll() is None, f"the simulator exited: {(project / 'logs' / 'simulator.log').read_text()}"
            assert time.monotonic() < deadline, "the simulator did not start within 30 s"
            time.sleep(0.1)
        yield url_file.read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _sim_get(base_url: str, path: str) -> Any:
    with urllib.request.urlopen(base_url + path, timeout=30) as resp:  # noqa: S310 - loopback simulator
        return json.load(resp)


class MeltanoProject:
    """Runs meltano commands in the project, logging each one."""

    def __init__(self, exe: Path, root: Path, sim_url: str) -> None:
        self.exe, self.root, self.sim_url = exe, root, sim_url
        self.count = 0
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("MELTANO_", "TARGET_HUBSPOT_UPSERT_", "TAP_JSONFILE_", "HUBSPOT_"))
            and k not in ("VIRTUAL_ENV", "PYTHONPATH")
        }
        env.update({
            "HUBSPOT_ACCESS_TOKEN": TOKEN,
            "HUBSPOT_API_BASE_URL": sim_url,
            CAPTURE_ENV: str(root / "captured-stdout"),
            "NO_COLOR": "1",
            "UV_PYTHON_DOWNLOADS": "never",
        })
        self.env = env

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        self.count += 1
        started = time.monotonic()
        proc = subprocess.run(
            [str(self.exe), *args], cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        slug = "-".join(a.lstrip("-").replace(":", "_").replace("=", "_").replace("/", "_") for a in args)[:70]
        log = self.root / "logs" / f"{self.count:02d}-meltano-{slug}.log"
        log.write_text(f"$ meltano {' '.join(args)}  # {time.monotonic() - started:.1f} s, exit {proc.returncode}\n"
                       f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        assert proc.returncode == 0, f"meltano {' '.join(args)} failed; see {log}\n{proc.stderr[-4000:]}"
        return proc

    def stored_state(self, state_id: str) -> Any:
        environment = state_id.split(":", 1)[0]
        out = self(f"--environment={environment}", "state", "get", state_id, timeout=120).stdout
        return json.loads(out)["singer_state"]

    def upserts(self, since: int = 0) -> list[dict[str, Any]]:
        return _sim_get(self.sim_url, f"/_sim/requests?upserts_only=1&since={since}")["results"]

    def stored_objects(self, object_type: str) -> dict[str, dict[str, str]]:
        return {o["properties"][_ID[object_type]]: o["properties"] for o in
                _sim_get(self.sim_url, f"/_sim/objects/{object_type}")["results"]}


_ID = {"contacts": "email", "companies": "company_external_id"}


def _emitted_states(capture_dir: Path, seen: set[Path]) -> dict[str, Any]:
    """The last STATE line of each target run since `seen`, by the stream it bookmarks."""
    last: dict[str, Any] = {}
    for path in sorted(set(capture_dir.iterdir()) - seen):
        seen.add(path)
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert lines, f"{path.name}: the target wrote no STATE"
        states = [json.loads(line) for line in lines]  # stdout holds STATE lines only
        streams = set(states[-1]["bookmarks"])
        assert len(streams) == 1, states[-1]
        last[streams.pop()] = states[-1]
    return last


def _upserted(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        assert entry["status"] == 200, entry
        by_type.setdefault(entry["object_type"], []).extend(entry["request_body"]["inputs"])
    return by_type


# -- the test ----------------------------------------------------------------------------------


def test_meltano_sync_then_incremental_sync(meltano_bin, project, sim_url):
    meltano = MeltanoProject(meltano_bin, project, sim_url)
    capture_dir, seen = project / "captured-stdout", set()

    # meltano.yml is valid for this Meltano version, but for one capability: the SDK reports
    # `validate-records` and Meltano Hub's plugin schema lists it, while the loader
    # capabilities of Meltano 4.4.1's meltano.yml schema do not yet (Meltano itself accepts
    # any capability name: the runs below use this file).
    project_yml = yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8"))
    for loader in project_yml["plugins"]["loaders"]:
        loader["capabilities"].remove("validate-records")
    document = json.dumps(project_yml)
    check = subprocess.run(
        [str(meltano_bin.parent / "python"), "-c", VALIDATE_SCRIPT], input=document,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert check.returncode == 0, f"meltano.yml does not match Meltano's schema:\n{check.stdout}{check.stderr}"

    meltano("install", timeout=900)
    loader_bin = project / ".meltano" / "loaders" / "target-hubspot-upsert" / "venv" / "bin"
    (loader_bin / "target-hubspot-upsert").rename(loader_bin / "target-hubspot-upsert.real")
    (loader_bin / "target-hubspot-upsert").write_text(WRAPPER)
    (loader_bin / "target-hubspot-upsert").chmod(0o755)

    # -- first run: everything lands --------------------------------------------------------
    run = meltano("run", "--no-install", "sync-hubspot")
    assert "Unknown setting" not in run.stderr  # Meltano passes only settings the target knows
    assert "names no setting" not in run.stderr  # nor variables the target would take for typos
    contacts = meltano.stored_objects("contacts")
    companies = meltano.stored_objects("companies")
    for rec in SAMPLE_CONTACTS:
        assert _as_hubspot(rec).items() <= contacts[rec["email"]].items()
    for rec in SAMPLE_COMPANIES:
        assert _as_hubspot(rec).items() <= companies[rec["company_external_id"]].items()
    assert len(contacts) == len(SAMPLE_CONTACTS) and len(companies) == len(SAMPLE_COMPANIES)
    first = meltano.upserts()
    sent = _upserted(first)
    assert sorted(i["id"] for i in sent["contacts"]) == sorted(r["email"] for r in SAMPLE_CONTACTS)
    assert sorted(i["id"] for i in sent["companies"]) == sorted(r["company_external_id"] for r in SAMPLE_COMPANIES)

    emitted = _emitted_states(capture_dir, seen)
    assert set(emitted) == set(STATE_IDS)
    for stream, state_id in STATE_IDS.items():
        assert meltano.stored_state(state_id) == emitted[stream], stream
    assert [Path(p).name for p in emitted["contacts"]["bookmarks"]["contacts"]["file_hashes"]] == [
        "export-2024-06-01.jsonl"]
    companies_state = emitted["companies"]

    # -- second run: only the changes are sent ------------------------------------------------
    new_file = project / "examples/data/contacts/export-2024-06-02.jsonl"
    new_file.write_text("".join(json.dumps(r) + "\n" for r in CHANGES), encoding="utf-8")
    meltano("run", "--no-install", "sync-hubspot")

    second = meltano.upserts(since=max(e["seq"] for e in first))
    sent = _upserted(second)
    assert set(sent) == {"contacts"}, "the unchanged companies export was sent again"
    assert sorted(i["id"] for i in sent["contacts"]) == sorted(r["email"] for r in CHANGES)
    for item in sent["contacts"]:
        change = next(r for r in CHANGES if r["email"] == item["id"])
        assert item["properties"] == _as_hubspot(change)

    after = meltano.stored_objects("contacts")
    assert len(after) == len(SAMPLE_CONTACTS) + 1
    for rec in CHANGES:
        assert _as_hubspot(rec).items() <= after[rec["email"]].items()
    changed = {r["email"] for r in CHANGES}
    for email, props in contacts.items():
        if email not in changed:
            assert after[email] == props, f"{email} changed although its record did not"
    assert meltano.stored_objects("companies") == companies

    emitted = _emitted_states(capture_dir, seen)
    assert set(emitted) == set(STATE_IDS)
    for stream, state_id in STATE_IDS.items():
        assert meltano.stored_state(state_id) == emitted[stream], stream
    assert sorted(Path(p).name for p in emitted["contacts"]["bookmarks"]["contacts"]["file_hashes"]) == [
        "export-2024-06-01.jsonl", "export-2024-06-02.jsonl"]
    assert emitted["companies"] == companies_state


def readme_block(name: str) -> tuple[str, str]:
    """(language, text) of the README block marked `<!-- meltano-test: name -->`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"<!-- meltano-test: {name} -->\n```") + len(f"<!-- meltano-test: {name} -->\n```")
    lang, _, rest = text[start:].partition("\n")
    return lang, rest[: rest.index("```")]


def _apply_snippet(project_file: Path, name: str) -> None:
    """Paste a README `meltano.yml` snippet into the project, as a user would: merged into the loader."""
    lang, text = readme_block(name)
    assert lang == "yaml"
    (snippet,) = yaml.safe_load(text)["plugins"]["loaders"]
    project = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == snippet.pop("name")]
    for key, value in snippet.items():
        loader[key] = {**loader.get(key, {}), **value}
    project_file.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")


def _invoke(meltano_bin: Path, project: Path, env: dict[str, str], messages: list[dict[str, Any]], log: str):
    proc = subprocess.run(
        [str(meltano_bin), "invoke", "target-hubspot-upsert"], cwd=project, env=env,
        input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True, text=True, timeout=300, check=False,
    )
    (project / "logs" / log).write_text(f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "names no setting" not in proc.stderr  # Meltano's own variables are not taken for typos
    return proc


def test_plugin_definition_added_with_from_ref_installs_and_loads(meltano_bin, tmp_path, sim):
    """As the README says: `meltano add --from-ref` into the clone, install, then its stream maps and logging."""
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "target-hubspot-upsert").symlink_to(ROOT)  # the clone, next to the project
    project_file = project / "meltano.yml"
    project_file.write_text(
        "project_id: 00000000-0000-4000-8000-000000000001\nsend_anonymous_usage_stats: false\n"
        "cli:\n  disable_version_check: true\ndefault_environment: dev\nenvironments:\n- name: dev\n",
        encoding="utf-8",
    )
    (project / "logs").mkdir()
    meltano = MeltanoProject(meltano_bin, project, sim.base_url)
    env = {**meltano.env, "PATH": f"{meltano_bin.parent}{os.pathsep}{meltano.env.get('PATH', '')}"}

    # -- the README's commands, exactly: add without installing, pip_url at the clone, install --
    lang, commands = readme_block("add")
    assert lang == "bash" and "--no-install" in commands
    proc = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", commands], cwd=project, env=env,
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False,
    )
    (project / "logs" / "readme-add.log").write_text(f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    added = yaml.safe_load(project_file.read_text(encoding="utf-8"))["plugins"]["loaders"][0]
    definition = yaml.safe_load(PLUGIN_FILE.read_text(encoding="utf-8"))
    assert added["name"] == "target-hubspot-upsert"
    assert definition["pip_url"] == "target-hubspot-upsert"
    assert added["pip_url"] == str(tmp_path / "target-hubspot-upsert")
    assert added["capabilities"] == definition["capabilities"]
    assert added["settings"] == definition["settings"]
    meltano("config", "set", "target-hubspot-upsert", "access_token", SIM_TOKEN, timeout=120)
    meltano("config", "set", "target-hubspot-upsert", "api_base_url", sim.base_url, timeout=120)

    about = json.loads(meltano("invoke", "target-hubspot-upsert", "--about", "--format=json", timeout=120).stdout)
    assert about["capabilities"] == definition["capabilities"]
    for setting in definition["settings"]:
        prop = about["settings"]["properties"][setting["name"]]
        assert setting["description"] == prop["description"], setting["name"]
        assert setting.get("value") == prop.get("default"), setting["name"]

    messages = [
        {"type": "SCHEMA", "stream": "contacts", "key_properties": ["email"],
         "schema": {"type": "object", "properties": {"email": {"type": "string"}, "firstname": {"type": ["string", "null"]}}}},
        *({"type": "RECORD", "stream": "contacts", "record": {"email": f"from-ref-{i}@example.com", "firstname": f"F{i}"}}
          for i in range(3)),
        {"type": "STATE", "value": {"bookmarks": {"contacts": {"done": 3}}}},
    ]
    proc = _invoke(meltano_bin, project, meltano.env, messages, "invoke.log")
    assert [json.loads(line) for line in proc.stdout.splitlines() if line.strip()] == [messages[-1]["value"]]
    assert "Unknown setting" not in proc.stderr
    for i in range(3):
        assert sim.find("contacts", "email", f"from-ref-{i}@example.com")["properties"]["firstname"] == f"F{i}"

    # -- the README's stream_maps snippet, pasted into meltano.yml: __NULL__ drops the fields --------
    _apply_snippet(project_file, "stream_maps")
    meltano("config", "set", "target-hubspot-upsert", "unknown_properties", "create", timeout=120)  # lifetime_value
    props = {n: {"type": ["string", "null"]} for n in ("email_address", "first_name", "internal_notes", "total_spent")}
    customers = [
        {"type": "SCHEMA", "stream": "customers", "key_properties": ["email_address"],
         "schema": {"type": "object", "properties": props}},
        {"type": "RECORD", "stream": "customers", "record": {
            "email_address": "ann@example.com", "first_name": "Ann", "internal_notes": "x", "total_spent": "12.50"}},
        {"type": "STATE", "value": {"bookmarks": {"customers": {"done": 1}}}},
    ]
    proc = _invoke(meltano_bin, project, meltano.env, customers, "invoke-stream-maps.log")
    ann = sim.find("contacts", "email", "ann@example.com")["properties"]
    assert ann["firstname"] == "Ann" and ann["lifetime_value"] == "12.5"
    assert not {"internal_notes", "first_name", "email_address", "total_spent"} & set(ann)
    assert "METRIC: " in proc.stderr and "Stream 'customers' -> contacts: received 1" in proc.stderr

    # -- the README's logging snippet, with the README's logging configuration: no METRIC lines -----
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Fewer METRIC lines"):]
    start = section.index("```yaml\n") + len("```yaml\n")
    (project / "target-logging.yml").write_text(section[start:section.index("```", start)], encoding="utf-8")
    _apply_snippet(project_file, "logging")
    customers[1]["record"]["first_name"] = "Annie"
    proc = _invoke(meltano_bin, project, meltano.env, customers, "invoke-logging.log")
    assert sim.find("contacts", "email", "ann@example.com")["properties"]["firstname"] == "Annie"
    assert "Stream 'customers' -> contacts: received 1" in proc.stderr
    assert "METRIC: " not in proc.stderr
