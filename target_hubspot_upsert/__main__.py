"""`python -m target_hubspot_upsert`."""

from target_hubspot_upsert.singer.cli import main

main()
