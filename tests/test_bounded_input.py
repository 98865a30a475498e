"""Memory stays bounded by what is in flight, whatever the input holds: huge lines, endless STATE."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from .helpers import contact, lines, record, schema, state, summary

# Runs the command given as arguments and prints the peak RSS (KiB) of it alone on stderr's last line.
_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_measured(config: dict, tmp_path, chunks) -> tuple[int, list[dict], str, int]:
    """Run the CLI on the text `chunks` yields; return (exit code, STATE values, stderr, peak RSS in MiB)."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "target_hubspot_upsert", "--config", str(config_path)]
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)

    def feed() -> None:
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    proc.wait(timeout=300)
    feeder.join(timeout=60)
    text = err_path.read_text("utf-8", "replace")
    peak_kib = int(text.strip().rsplit("\n", 1)[-1])
    states = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()]
    return proc.returncode, states, text, peak_kib // 1024


def test_a_500_mb_line_is_a_rejected_record_read_with_bounded_memory(sim, config, tmp_path):
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 1, "rejected_records_path": str(rejected)}

    def chunks():
        yield lines([schema("contacts", key=["email"]), record("contacts", contact(1))]).encode()
        yield b'{"type": "RECORD", "stream": "contacts", "record": {"email": "big@example.com", "firstname": "'
        block = b"x" * (1 << 20)
        for _ in range(500):
            yield block
        yield b'"}}\n'
        yield lines([record("contacts", contact(2)), state({"n": 3})]).encode()

    code, states, stderr, peak_mib = run_measured(cfg, tmp_path, chunks())
    assert code == 0, stderr[-3000:]
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
    assert states == [{"n": 3}]
    assert "received 3, created 2, updated 0, merged 0, rejected 1" in summary(stderr, "contacts")
    assert {o["properties"]["email"] for o in sim.objects("contacts")} == {"user1@example.com", "user2@example.com"}
    [line] = [json.loads(text) for text in rejected.read_text().splitlines()]
    assert line["error"]["code"] == "RECORD_TOO_LARGE"
    assert line["position"] == 2
    assert line["record"]["_line_size"] > 500 * (1 << 20)
    assert line["record"]["_line_head"].startswith('{"type": "RECORD", "stream": "contacts"')
    assert len(line["record"]["_line_head"]) == 1000
    assert rejected.stat().st_size < 10_000  # the line is not copied whole


def test_an_oversized_line_that_is_no_record_is_a_clear_input_error(sim, config, tmp_path):
    def chunks():
        yield b'{"type": "STATE", "value": {"x": "' + b"y" * (17 << 20) + b'"}}\n'

    code, states, stderr, _ = run_measured(config, tmp_path, chunks())
    assert code != 0
    assert states == []
    assert "Input line 1 is 17,825," in stderr
    assert "characters long, over the 16,777,216 a line may hold" in stderr
    assert "Traceback" not in stderr


def test_a_million_state_lines_behind_one_record_stay_under_100_mb(sim, config, tmp_path):
    sim.configure(latency_ms=0)

    def chunks():
        yield lines([schema("contacts", key=["email"]), record("contacts", contact(1))]).encode()
        padding = "p" * 200
        batch = []
        for i in range(1_000_000):
            batch.append(f'{{"type": "STATE", "value": {{"position": {i}, "pad": "{padding}"}}}}\n')
            if len(batch) == 10_000:
                yield "".join(batch).encode()
                batch = []

    code, states, stderr, peak_mib = run_measured(config, tmp_path, chunks())
    assert code == 0, stderr[-3000:]
    assert peak_mib < 100, f"peak RSS {peak_mib} MiB"
    assert states == [{"position": 999_999, "pad": "p" * 200}]  # only the newest could ever be written


def test_a_batch_file_line_over_the_cap_is_a_rejected_record(sim, config, tmp_path):
    import gzip  # noqa: PLC0415

    from .helpers import run_in_process  # noqa: PLC0415

    batch_file = tmp_path / "contacts.jsonl.gz"
    with gzip.open(batch_file, "wt", encoding="utf-8") as out:
        out.write(json.dumps(contact(1)) + "\n")
        out.write(json.dumps({"email": "big@example.com", "firstname": "x" * (17 << 20)}) + "\n")
        out.write(json.dumps(contact(2)) + "\n")
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 1, "rejected_records_path": str(rejected)}
    run = run_in_process(cfg, [
        schema("contacts", key=["email"]),
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl", "compression": "gzip"},
         "manifest": [batch_file.as_uri()]},
        state({"batch": 1}),
    ])
    assert run.error is None, run.error
    assert {o["properties"]["email"] for o in sim.objects("contacts")} == {"user1@example.com", "user2@example.com"}
    [line] = [json.loads(text) for text in rejected.read_text().splitlines()]
    assert line["error"]["code"] == "RECORD_TOO_LARGE"
    assert line["record"]["_line_size"] > 17 << 20
    assert line["record"]["_line_head"].startswith('{"email": "big@example.com"')
    assert run.states == [{"batch": 1}]


def test_a_batch_file_number_no_decimal_holds_is_a_rejected_record(sim, config, tmp_path):
    from .helpers import run_in_process  # noqa: PLC0415

    batch_file = tmp_path / "contacts.jsonl"
    batch_file.write_text(
        json.dumps(contact(1)) + "\n"
        + '{"email": "big@example.com", "num_orders": 1e99999999999999999999}\n'
        + json.dumps(contact(2)) + "\n",
    )
    rejected = tmp_path / "rejected.jsonl"
    cfg = {**config, "max_rejected_records": 1, "rejected_records_path": str(rejected), "validate_records": False}
    run = run_in_process(cfg, [
        schema("contacts", key=["email"]),
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"}, "manifest": [batch_file.as_uri()]},
        state({"batch": 1}),
    ])
    assert run.error is None, run.error
    assert {o["properties"]["email"] for o in sim.objects("contacts")} == {"user1@example.com", "user2@example.com"}
    [line] = [json.loads(text) for text in rejected.read_text().splitlines()]
    assert line["error"]["code"] == "INVALID_VALUE"
