"""Usage analytics from the rollups the call_logs trigger maintains (migration 0007)."""
