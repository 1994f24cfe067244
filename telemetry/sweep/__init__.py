"""Hyperparameter sweeps from W&B sweep files, run offline on Optuna."""
