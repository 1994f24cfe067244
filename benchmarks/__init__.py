"""Benchmarks of rltelemetry against the libraries its users would call directly.

Run them with ``make bench`` (``python benchmarks/run.py``); ``--quick`` runs every
section at tiny sizes for CI. See ``benchmarks/run.py`` for what is measured.
"""
