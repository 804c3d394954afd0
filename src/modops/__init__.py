"""modops."""
