"""sessiond."""
