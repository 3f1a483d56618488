"""The simulated world: virtual clock, cell physics and simulated instruments."""
