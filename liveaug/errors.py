"""User-facing errors: one readable line that names the thing and the fix.

Every failure caused by input the user controls (a file, a device, a setting) is raised as a
:class:`LiveaugError`; the command line prints ``str(error)`` and exits 2 without a traceback
(``--debug`` shows it).
"""

from __future__ import annotations


class LiveaugError(Exception):
    """A problem the user can fix; ``str()`` is the whole message, fix included."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what} — {fix}" if fix else what)


def one_line(exc: BaseException) -> str:
    """The exception's message as one readable line (its type name when the message is empty);
    library errors (onnxruntime, zarr) often span many lines."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SessionError(LiveaugError):
    """A path that is not a readable liveaug session (missing, not OME-Zarr, corrupt)."""


class SourceError(LiveaugError):
    """A frame source that cannot be opened or configured (camera, producer, replay)."""


class EndOfStream(Exception):
    """Raised by ``Source.read`` when a finite source (a replayed session) has no more frames."""
