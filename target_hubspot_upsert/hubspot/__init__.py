"""HubSpot's rules: paths and bodies (the client), writes and their accounting, preflight, serialization."""
