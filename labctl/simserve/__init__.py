"""`labctl sim serve`: simulated instruments behind their real command sets.

`smu.SimSmu` is a source-measure unit wired to a simulated cell (labctl's
`SimCyclerChannel`); `scpi` speaks the Keithley 2400 and 2450 command subsets the
labctl drivers use; `server` serves it on a TCP socket on 127.0.0.1.
"""
