"""Long-running servers beside the workers: the metrics exporter today, the
HTTP job API and A2A endpoints as they arrive."""
