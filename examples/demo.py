"""End-to-end demo: sample Singer data -> target-hubspot-upsert -> the local HubSpot simulator (hubspot_simulator).

Run with `uv run python examples/demo.py`. No HubSpot account or network is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hubspot_simulator import HubSpotSimulator

HERE = Path(__file__).parent
TOKEN = "demo-token"  # noqa: S105 - the simulator's token


def main() -> int:
    """Run the pipeline and print what landed."""
    with HubSpotSimulator(tokens={TOKEN}) as sim, tempfile.TemporaryDirectory() as tmp:
        config = {
            "access_token": TOKEN,
            "api_base_url": sim.base_url,
            "object_mappings": {"accounts": {"object_type": "companies", "id_property": "company_external_id"}},
            "max_rejected_records": 10,
            "rejected_records_path": f"{tmp}/rejected.jsonl",
        }
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        print(f"Local HubSpot simulator at {sim.base_url}\n")
        print("$ target-hubspot-upsert --config config.json < examples/demo.singer")
        proc = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "target_hubspot_upsert", "--config", str(config_path),
             "--input", str(HERE / "demo.singer")],
            capture_output=True, text=True, check=False,
        )
        print("\nSTATE emitted on stdout (after HubSpot acknowledged the records before it):")
        for line in proc.stdout.splitlines():
            print("  ", line)
        print("\nRun summary (from the target's log on stderr):")
        for line in proc.stderr.splitlines():
            if "Stream '" in line or "rejected" in line.lower():
                print("  ", line.split("| ")[-1])
        for object_type, columns in [
            ("contacts", ["email", "firstname", "lastname", "lifecyclestage", "num_orders", "lifetime_value",
                          "date_of_birth", "last_order_at", "is_vip", "interests"]),
            ("companies", ["company_external_id", "name", "domain", "numberofemployees"]),
        ]:
            print(f"\nWhat landed in HubSpot {object_type}:")
            rows = [[o["properties"].get(c, "") for c in columns] for o in sim.objects(object_type)]
            widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
            print("  " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
            print("  " + "-+-".join("-" * w for w in widths))
            for row in rows:
                print("  " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        rejected = Path(tmp) / "rejected.jsonl"
        if rejected.exists():
            print("\nRejected records (rejected_records_path):")
            for line in rejected.read_text().splitlines():
                item = json.loads(line)
                print(f"   {item['stream']} #{item['position']} {item['id'] or ''}: {item['error']['code']}: {item['error']['message']}")
        print(f"\nTarget exit code: {proc.returncode}")
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
