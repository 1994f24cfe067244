"""Sinks out of the training process: a sidecar follows the run's log and feeds them.

The trainer's process keeps the bus, the durable log and its in-process sinks;
``telemetry.sidecar.parent.Sidecar`` (a sink of the bus) starts ``python -m
telemetry.sidecar RUN_DIR``, which rebuilds the moved sinks from the spec the
parent wrote (``telemetry.sidecar.spec``) and delivers the log to them with
``telemetry.sidecar.deliver.deliver_log``: the bus's own lanes, fed from the
file instead of the intake, each keeping a durable cursor.
"""
