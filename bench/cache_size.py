"""Size on disk and look-up cost of a change cache holding many objects (`skip_unchanged`).

Run from the repository root (10 million entries take about 6 minutes and 270 MB in a temporary
directory, deleted at the end)::

    uv run python bench/cache_size.py                  # 10,000,000 entries
    uv run python bench/cache_size.py --entries 1000000

Entries are written through the target's own `ChangeCache.write`, with the keys real contact ids
hash to (so they arrive in random key order, as in a real first run), committed 20,000 at a time.
Then 200,000 random ids are looked up, `LOOKUP_CHUNK` (500) per query, as a re-sync does.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from target_hubspot_upsert.pipeline.changecache import LOOKUP_CHUNK, ChangeCache, object_key, utc_day

CHUNK = 20_000
LOOKUPS = 200_000


def contact_key(i: int) -> int:
    """The cache key of contact `user{i}@example.com`."""
    return object_key("contacts", "email", f"user{i}@example.com")


def main(argv: list[str] | None = None) -> int:
    """Fill a scratch cache, print its size per entry and the CPU per look-up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    entries = parser.parse_args(argv).entries
    rng = random.Random(1)  # noqa: S311 - repeatable test data
    with tempfile.TemporaryDirectory(prefix="change-cache-") as scratch:
        path = Path(scratch) / "changes.sqlite"
        cache = ChangeCache(path, 12345678)
        started, day = time.perf_counter(), utc_day()
        for start in range(0, entries, CHUNK):
            ids = range(start, min(start + CHUNK, entries))
            cache.write([(contact_key(i), rng.getrandbits(64) - 2**63, day, rng.getrandbits(64) - 2**63) for i in ids])
        cache.close()
        size = path.stat().st_size
        print(f"{entries:,} entries written in {time.perf_counter() - started:.0f} s: {size / 2**20:.0f} MiB, "
              f"{size / entries:.1f} bytes per entry")
        cache = ChangeCache(path, 12345678)
        picked = rng.sample(range(entries), min(LOOKUPS, entries))
        keys = [contact_key(i) for i in picked]
        cpu = time.process_time()
        found = sum(len(cache.lookup(keys[i : i + LOOKUP_CHUNK])) for i in range(0, len(keys), LOOKUP_CHUNK))
        cpu = time.process_time() - cpu
        cache.close()
    per_key = 1e6 * cpu / len(keys)
    print(f"{len(keys):,} look-ups, {LOOKUP_CHUNK} per query: {per_key:.2f} µs CPU each ({found:,} found)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
