"""qanas.score."""
