"""Sweeps over eval.py: `a..b` ranges, the finished-points store, multirun rules, the FID table."""
