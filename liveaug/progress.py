"""Progress bars for long commands (simulate, record, train, batch): rate and ETA on stderr."""

from __future__ import annotations

from tqdm import tqdm


def progress(total: int | None, desc: str, unit: str = "frame") -> tqdm:
    """A tqdm bar showing count, rate and ETA; silent when stderr is not a terminal in CI logs."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5)
