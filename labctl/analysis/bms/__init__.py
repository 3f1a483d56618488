"""BMS validation: checks as measurements with limits, CAN timing on frames, the report."""
