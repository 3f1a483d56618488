from labctl.cells.load import DEFAULT_CELL, list_presets, load_cell

__all__ = ["DEFAULT_CELL", "list_presets", "load_cell"]
