"""labctl's pytest plugin (entry point `pytest11`): hardware qualification with pytest.

Being filled in: options --labctl-station / --labctl-sim, instrument fixtures,
`measure(...)` with limits and qualification records.
"""

from __future__ import annotations
