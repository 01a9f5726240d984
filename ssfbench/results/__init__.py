"""Results: the result record (``Result``, its schema) and the files that hold them (result JSON,
per-frame predictions, leaderboard CSVs)."""
