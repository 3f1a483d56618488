"""Cell files: presets and the lab's own (`labctl/cells/load.py`); names load on first use."""

from labctl.lazy import lazy_names

__all__ = ["DEFAULT_CELL", "list_presets", "load_cell"]
__getattr__, __dir__ = lazy_names(__name__, dict.fromkeys(__all__, "labctl.cells.load"))
