"""Holdout evaluation: metrics, threshold choice, confidence intervals and the promotion gate."""
