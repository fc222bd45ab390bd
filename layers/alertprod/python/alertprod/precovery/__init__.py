"""Daytime precovery on the difference-image cache, and the cache index."""
