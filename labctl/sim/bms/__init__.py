"""The simulated BMS: a pack of series cells, the BMS firmware's logic, and its CAN nodes.

- `pack`: N series cells (OCV table, R0 + one RC, lumped heating) with cell-to-cell spread,
  plus the stimulus a HIL bench applies (pack current, cell-emulator voltages, forced
  temperatures, stack pressure);
- `config`: the `sim-bms` settings of a station file (protections, balancing, SoC, topology);
- `ecu`: protections with threshold/delay/recovery, contactors, balancing, SoC estimation,
  sensor and communication diagnostics;
- `nodes`: topologies (which node sends which message, measurement latency), periodic
  frames with counters and checksums, and frame-level fault injection;
- `sim`: the `bms` instrument tying them to a python-can bus on the virtual clock.
"""
