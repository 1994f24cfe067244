"""Every simulator setting is reachable from its trainer's ``sim`` section."""

from __future__ import annotations

import pytest

from agents.amp import AMPConfig
from agents.erl import ERLConfig
from agents.ppo import PPOConfig
from main import load_train_config
from telemetry.errors import ConfigError


def test_an_erl_override_reaches_the_trading_simulator() -> None:
    """``erl.sim.<setting>=value`` on the command line is the simulator's value."""
    config = load_train_config(
        None, ["trainer=erl", "erl.sim.loss_penalty_multiplier=2.5", "erl.sim.max_holding_period=7"]
    )
    config.validate()
    trading = config.erl.trading()  # type: ignore[attr-defined]
    assert (trading.loss_penalty_multiplier, trading.max_holding_period) == (2.5, 7)
    assert trading.n_stocks == ERLConfig().n_stocks  # the trainer's own fields still apply


def test_lists_become_the_simulators_tuples() -> None:
    """Tuple settings (a transition matrix too) are given as YAML lists."""
    matrix = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]
    trading = ERLConfig(sim={"regime_transition": matrix}).trading()
    assert trading.regime_transition == tuple(tuple(row) for row in matrix)
    assert PPOConfig(sim={"segment_mix": [0.25] * 4}).auction_config().segment_mix == (0.25,) * 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ERLConfig(sim={"loss_penalty": 1.0}), "erl.sim.loss_penalty: unknown simulator setting"),
        (ERLConfig(sim={"n_stocks": 3}), "erl.sim.n_stocks: set it as erl.n_stocks"),
        (ERLConfig(sim={"inaction_penalty": 5.0}), "erl.sim: TradingConfig.inaction_penalty must"),
        (PPOConfig(sim={"mobile_share": 2.0}), "ppo.sim: "),
        (AMPConfig(sim={"num_envs": 2}), "amp.sim.num_envs: set it as amp.num_envs"),
    ],
)
def test_a_bad_setting_names_its_key(
    config: ERLConfig | PPOConfig | AMPConfig, message: str
) -> None:
    """Unknown, duplicated or refused settings fail validation naming the key."""
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        config.validate()
