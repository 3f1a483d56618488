"""Plugin step types built into labctl (eis, pressure, profile, abuse, bms...), one module per kind."""
