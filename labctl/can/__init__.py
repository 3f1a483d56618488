"""CAN bus for labctl: python-can buses from station files, DBC-driven signal maps, frame logs.

- `bus`: open any python-can interface (virtual, socketcan, pcan, vector...) from settings;
  `CanPort` adds receive filters, periodic transmit (virtual-time aware) and recording.
- `signals`: the station file's mapping of labctl roles (cell voltages, faults, commands...)
  to a DBC's messages and signals, checked before a run starts.
- `decode`: a precompiled batch decoder (numpy) for logged frames.
- `framelog`: BLF frame logs in the run directory and their decoded signals as Parquet.
- `checksum`: the message checksums and rolling counters a BMS uses.
"""
