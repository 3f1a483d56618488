"""Stations: which driver fills which role, with which settings and ranges.

`spec.py` is the plain description validation uses (no drivers imported),
`settings.py` the settings each built-in driver accepts, `load.py` reads and
checks station files, `build.py` builds the instruments for a run.
Import from the submodules: this package imports nothing itself, so that reading
a StationSpec never pulls in the drivers.
"""
