"""Every figure key a full or quick run writes to ``results.json`` (the quick test checks them)."""

from __future__ import annotations

SINKS = ("jsonl", "console", "tensorboard", "wandb")
TRAINERS = ("erl", "ppo", "amp")
SCALING = {"sinks": (1, 2, 4, 8), "metrics": (1, 10, 100, 1000), "threads": (1, 2, 4, 8)}

FIGURE_KEYS: tuple[str, ...] = (
    "hot_path.bus_log_us",
    "hot_path.bus_log_vs_add_scalar",
    "hot_path.bus_log_vs_sb3",
    "hot_path.bus_log_block_us",
    "hot_path.bus_log_delivered_us",
    "hot_path.bus_log_vs_send_nowait",
    "hot_path.bus_log_vs_orjson",
    "throughput.jsonl_events_per_s",
    "throughput.jsonl_rss_growth_mib",
    "throughput.all_sinks_events_per_s",
    *(f"throughput.all_sinks.{sink}_steps_per_s" for sink in SINKS),
    *(f"throughput.all_sinks.{sink}_vs_four_calls" for sink in SINKS),
    "throughput.all_sinks_rss_growth_mib",
    "efficiency.tensorboard_steps_per_s",
    "efficiency.wandb_steps_per_s",
    *(
        f"training.{name}.{what}"
        for name in TRAINERS
        for what in ("overhead_pct", "total_s", "sidecar_overhead_pct", "sidecar_total_s")
    ),
    *(
        f"scaling.{series}.{x}.{what}"
        for series, points in SCALING.items()
        for x in points
        for what in ("hot_us", "events_per_s")
    ),
    "outage.rss_growth_mib",
    "outage.rss_growth_unpaced_mib",
    "outage.publish_s",
    "outage.close_drain_s",
    "sims.trading_episode_ms",
    "sims.auction_episode_ms",
    "sims.motion_step_16_ms",
)
