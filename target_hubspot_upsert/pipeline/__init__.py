"""One run's flow: stream buffers, dispatcher, checkpoints, the run's life, reports, rejects, change cache."""
