"""qanas.quant."""
