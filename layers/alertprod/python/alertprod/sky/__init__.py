"""The survey simulator: focal plane, sky, visits, rendering, and the truth."""
