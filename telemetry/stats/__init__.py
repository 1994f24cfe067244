"""Statistics over a run's durable log: its trades, a sweep's trials."""
