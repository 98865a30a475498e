"""Fuzz: arbitrary bytes and JSON shapes as Singer lines through the command line, against the simulator.

Whatever the input, the run exits 0 or 1, never with a traceback; a failed run says why in one ERROR
line; stdout holds only STATE lines, and none of them passes a good record that did not land (or
was not rejected). The example count is modest: each example is a run of the CLI.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hubspot_simulator import HubSpotSimulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import TOKEN
from .fuzz_lines import singer_inputs
from .helpers import run_cli


def _states_in(lines: list[tuple[str, Any, bytes]]) -> list[tuple[int, Any]]:
    """(index, value) of every line the target could read as a STATE message, fuzzed ones included."""
    found = []
    for index, (_, _, line) in enumerate(lines):
        try:
            message = json.loads(line.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            continue
        if isinstance(message, dict) and message.get("type") == "STATE" and "value" in message:
            found.append((index, message["value"]))
    return found


def _rejected_emails(path: Path) -> set[str]:
    if not path.exists():
        return set()
    emails = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)["record"]
        if isinstance(record, dict) and isinstance(record.get("email"), str):
            emails.add(record["email"].lower())
    return emails


def assert_states_never_pass_what_landed(lines, stdout: str, sim: HubSpotSimulator, rejected: set[str]) -> None:
    good = [(index, key) for index, (kind, key, _) in enumerate(lines) if kind == "record"]
    settled = {key for _, key in good if key in rejected or sim.find("contacts", "email", key) is not None}
    candidates = _states_in(lines)
    for text in stdout.splitlines():
        value = json.loads(text)  # only JSON lines on stdout
        # The STATE line it came from: some input STATE with this value, every good record before it settled.
        sources = [index for index, candidate in candidates if candidate == value]
        assert sources, f"stdout has {text!r}, which is no STATE of the input"
        assert any(all(key in settled for i, key in good if i < index) for index in sources), (
            f"STATE {text!r} was written before the records ahead of it landed"
        )


@settings(
    max_examples=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(lines=singer_inputs(), batch_size=st.sampled_from([1, 3, 100]))
def test_any_input_ends_cleanly_with_only_true_checkpoints(lines, batch_size):
    with tempfile.TemporaryDirectory() as folder, HubSpotSimulator(tokens={TOKEN}) as sim:
        rejected_path = Path(folder) / "rejected.jsonl"
        config = {
            "access_token": TOKEN, "api_base_url": sim.base_url, "batch_size_rows": batch_size,
            "max_rejected_records": 2, "rejected_records_path": str(rejected_path), "request_timeout": 10,
        }
        run = run_cli(config, b"".join(line + b"\n" for _, _, line in lines), tmp_path=Path(folder))
        assert run.returncode in (0, 1), run.stderr[-3000:]
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        if run.returncode:
            errors = [line for line in run.stderr.splitlines() if "| ERROR " in line]
            assert len(errors) == 1, errors
        assert_states_never_pass_what_landed(lines, run.stdout, sim, _rejected_emails(rejected_path))
