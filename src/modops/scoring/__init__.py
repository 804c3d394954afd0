"""Scoring: batch inference over stored images (no Airflow, no MLflow)."""
