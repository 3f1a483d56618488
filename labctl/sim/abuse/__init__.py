"""Simulated thermal abuse: decomposition reactions, the cell's heat balance, the calorimeter.

`reactions` holds the Arrhenius (and melting) kinetics and the preset files,
`cellthermal` integrates the lumped cell heat balance with scipy's solve_ivp,
`calorimeter` is the `sim-calorimeter` instrument (an abuse-rated chamber that
also measures the cell temperature, with hard interlocks).
"""
