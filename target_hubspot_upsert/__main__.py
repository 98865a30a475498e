"""`python -m target_hubspot_upsert`."""

from target_hubspot_upsert.cli import main

main()
