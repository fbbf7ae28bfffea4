"""qanas.data."""
