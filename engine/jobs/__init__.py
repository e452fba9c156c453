"""Where a generation runs: off the caller's thread here, or as a queued job on Celery workers."""
