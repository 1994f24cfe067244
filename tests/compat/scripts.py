"""Scripts written against wandb's API, run as ``import telemetry as wandb`` or the real wandb."""

SEEDS = """
import sys
if sys.argv[1] == "telemetry":
    import telemetry as wandb
else:
    import wandb

wandb.init(project="erl", entity=None, config={"population_size": 4, "actor_lr": 1e-3},
           resume="allow")
for gen in range(3):
    wandb.log({"fitness/mean": 1.0 + gen, "fitness/max": 2.0 + gen,
               "train/actor_loss": 0.5 / (gen + 1), "buffer/size": 100 * gen})
wandb.finish()
"""

LIVE_TRADING = """
import sys
if sys.argv[1] == "telemetry":
    import telemetry as wandb
else:
    import wandb

# The live-trading integration: one row per completed trade.
wandb.init(project="ai-trading", job_type="live-trading")
trades = [(101.0, 103.5, 25.0, 340.0), (99.0, 98.2, -8.0, 120.0), (100.5, 104.0, 35.0, 900.0)]
for entry, exit_, pnl, seconds in trades:
    wandb.log({"live/entry_price": entry, "live/exit_price": exit_,
               "live/realized_pnl": pnl, "live/duration_seconds": seconds})
wandb.finish()
"""

GAELP_TRACKER = """
import sys
if sys.argv[1] == "telemetry":
    import telemetry as wandb
else:
    import wandb


class Tracker:
    \"\"\"GAELP's experiment tracker: init once, log per episode, finish at the end.\"\"\"

    def __init__(self, project, config):
        self.run = wandb.init(project=project, config=config, reinit=True)

    def log_episode(self, episode, metrics):
        wandb.log({f"episode/{k}": v for k, v in metrics.items()}, step=episode)

    def finish(self):
        self.run.finish()


tracker = Tracker("gaelp", {"lr": 3e-3, "gamma": 0.9})
for episode in range(4):
    tracker.log_episode(episode, {"total_reward": 10.0 + episode, "roas": 1.5 * episode})
tracker.finish()
"""

FULL = """
import sys, pathlib
if sys.argv[1] == "telemetry":
    import telemetry as wandb
else:
    import wandb

run = wandb.init(project="p", config={"lr": 0.1})
wandb.config.update({"batch": 32})
wandb.log({"a": 1})
wandb.log({"b": 2}, commit=False)
wandb.log({"c": 3})
wandb.log({"d": 4}, step=5)
wandb.log({"e": 5}, step=5)
wandb.log({"f": 6})
wandb.define_metric("epoch")
wandb.define_metric("val/*", step_metric="epoch", summary="min")
for epoch in range(3):
    wandb.log({"val/loss": 1.0 / (epoch + 1), "epoch": epoch})
    wandb.log({"train/loss": 2.0 / (epoch + 1)})
run.summary["final"] = 7
path = pathlib.Path(run.dir) / "model.txt"
path.write_text("weights")
artifact = wandb.Artifact("model", type="model", metadata={"epochs": 3})
artifact.add_file(str(path))
run.log_artifact(artifact)
wandb.alert(title="done", text="all epochs", level="INFO") if sys.argv[1] == "telemetry" else None
with open(pathlib.Path(sys.argv[2]), "w") as out:
    out.write(repr(dict(val=run.summary["val/loss"]["min"], final=run.summary["final"],
                        lr=wandb.config.lr, batch=wandb.config["batch"])))
wandb.finish()
"""
