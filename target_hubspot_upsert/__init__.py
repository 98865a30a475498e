"""target-hubspot-upsert: a Singer target that upserts records into HubSpot CRM objects."""
