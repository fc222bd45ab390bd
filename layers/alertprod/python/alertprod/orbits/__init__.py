"""Solar-system orbits: MPCORB.DAT I/O, Keplerian propagation, topocentric ephemerides."""
