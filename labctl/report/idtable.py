"""Tables whose first column is a run id or run directory that must never be cut.

A technician copies the id from `labctl ls`, `labctl status` or the table of a
multi-channel run into the next command, so the id is printed whole on one line:
in a table when it fits the terminal (the other columns give way), else one run per
block: the id alone on its line, the other fields indented under it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

_MIN_OTHER = 20  # a longer cell (step text, reason) may wrap; shorter ones must fit whole


def print_id_table(console: Console, heads: Sequence[str], rows: Sequence[Sequence[str]]
                   ) -> None:
    """Print rows whose first cell is an id that must stay whole (see the module doc)."""
    if not rows:
        return
    id_width = max(len(heads[0]), *(len(r[0]) for r in rows))
    others = [max(len(heads[k]), *(len(r[k]) for r in rows)) for k in range(1, len(heads))]
    # Table chrome: "│ " + " │ " between columns + " │".
    chrome = 4 + 3 * (len(heads) - 1)
    if id_width + sum(min(w, _MIN_OTHER) for w in others) + chrome <= console.width:
        table = Table()
        table.add_column(heads[0], no_wrap=True, min_width=id_width)
        for head in heads[1:]:
            table.add_column(head, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    # One print for all blocks: rich's cost is per call (~0.12 ms), and a store of
    # 1,000 runs is 2,000 lines.
    lines = []
    for row in rows:
        details = "  ".join(f"{h}: {v}" for h, v in zip(heads[1:], row[1:], strict=True))
        lines += [row[0], f"    {details}"]
    console.print("\n".join(lines), highlight=False, soft_wrap=True, markup=False)
