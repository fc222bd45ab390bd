"""Forced PSF photometry at given positions, vectorised over many positions."""
