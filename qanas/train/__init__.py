"""qanas.train."""
