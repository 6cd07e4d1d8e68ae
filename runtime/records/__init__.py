"""What happened to every frame: the per-frame record, the run report, latency statistics."""
