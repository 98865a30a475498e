"""The Singer side: the target, its sinks, reading input lines and BATCH files, the SDK adapter, the command line."""
