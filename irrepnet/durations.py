"""How long something took or will take, in words a reader scans: one formatter for every progress line.

Standard library only: the CLI, the training loop and the bench share it.
"""

from __future__ import annotations


def duration(seconds: float, *, compact: bool = False) -> str:
    """``4.2 s``, ``3 min 05 s``, ``2 h 07 min``; with ``compact``, ``4.2s``, ``3m05s``, ``2h07m``.

    Under a minute to a tenth of a second; above it the two largest units, the smaller
    zero-padded so that lines of a log align. ``compact`` is for lines that repeat many
    times (the training progress), the spaced form for one-off messages.
    """
    sec, minute, hour = ("s", "m", "h") if compact else (" s", " min", " h")
    sep = "" if compact else " "
    if seconds < 60:
        return f"{seconds:.1f}{sec}"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}{minute}{sep}{secs:02d}{sec}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}{hour}{sep}{minutes:02d}{minute}"
