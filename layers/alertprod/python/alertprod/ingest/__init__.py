"""Validation of uploads against the upload contract, and quarantine of what breaks it."""
