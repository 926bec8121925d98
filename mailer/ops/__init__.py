"""Running it: health, logs, metrics."""
