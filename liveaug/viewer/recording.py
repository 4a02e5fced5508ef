"""Record while viewing: a recorder the pipeline always has, writing only while switched on."""

from __future__ import annotations

import threading
from pathlib import Path

from liveaug.frame import Frame
from liveaug.session import SessionWriter
from liveaug.sources.base import SourceInfo


class SwitchableRecorder:
    """Pipeline ``Recorder`` that appends to a session between :meth:`start` and :meth:`stop`.

    ``append`` runs on the pipeline's recorder thread; start/stop on the GUI thread. The writer
    is closed on stop (its parquet summaries written), so every recording is a complete session.
    """

    def __init__(self, info: SourceInfo | None = None) -> None:
        self.info = info
        self._lock = threading.Condition()
        self._writer: SessionWriter | None = None
        self.path: Path | None = None
        self.frames = 0
        self.offered = 0
        """Frames the pipeline handed over so far, recording or not (its acquisition order)."""

    @property
    def recording(self) -> bool:
        """True while frames are being written."""
        return self._writer is not None

    def start(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Begin a new session at ``path`` (needs ``info`` from the opened source)."""
        if self.info is None:
            raise RuntimeError("start the source before recording")
        info = self.info
        writer = SessionWriter.for_source(path, info, overwrite=overwrite)
        with self._lock:
            old, self._writer = self._writer, writer
            self.path, self.frames = Path(path), 0
        if old is not None:
            old.close()

    def stop(self, through: int | None = None, timeout_s: float = 2.0) -> Path | None:
        """Stop writing and close the session; returns its path.

        ``through``: the pipeline's acquired count when the user pressed stop; frames up to it
        still queued for the recorder are written first (waiting at most ``timeout_s``).
        """
        with self._lock:
            if through is not None and self._writer is not None:
                self._lock.wait_for(lambda: self.offered >= through, timeout_s)
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        return self.path

    def append(self, frame: Frame) -> None:
        """Write ``frame`` when recording (called by the pipeline's recorder thread)."""
        with self._lock:
            try:
                if self._writer is not None:
                    self._writer.append(frame)
                    self.frames += 1
            finally:
                self.offered += 1
                self._lock.notify_all()

    def close(self) -> None:
        """End of the pipeline: finish any recording."""
        self.stop()
