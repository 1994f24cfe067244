"""The collector: Redis Streams of many producers into one central log per run, then sinks.

Producers publish through the ``redis`` sink (``sinks/redis_sink.py``), one stream
per run and rank (``streams.stream_key``) with entry ids from ``seq``. A
collector (``cli.collect``) reads every stream in one consumer group, writes each
run's central log (``central.CentralLog``) durably before acknowledging, and
delivers the central logs to the configured sinks.
"""
