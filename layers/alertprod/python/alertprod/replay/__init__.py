"""Replay of a survey directory through the embedded stack, and the export of what it produced."""
