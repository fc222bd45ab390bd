"""Per-user alert filters (issue: alert distribution)."""
