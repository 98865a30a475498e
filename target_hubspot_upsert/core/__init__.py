"""The shared core: plain data passed between packages, settings, stream mappings, errors, redaction, logs."""
