"""GenTL producers and the devices they see, through harvesters.

A GenTL producer (``.cti`` file, shipped with a camera vendor's SDK) is found from ``--cti`` paths
and from the folders in ``GENICAM_GENTL64_PATH``. The ``genicam`` wheel ships one, ``viky.cti``,
with three simulated cameras: :func:`bundled_simulator_cti` finds it.

Why one harvester per process (:class:`_Hub`): a producer lets its System module be opened once per
process, so a second ``Harvester`` on the same ``.cti`` sees no devices while the first is open, and
``Harvester.update()`` closes every camera the harvester has open. The hub therefore keeps a single
harvester, refreshes the device list only while no camera is open, and is released when the last
camera closes (a second open in the same process then starts from scratch).

harvesters logs loudly (tracebacks for errors we handle); its messages go to the
``liveaug.harvesters`` logger, silent unless a level is set on it (``--debug`` sets DEBUG).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from liveaug.errors import SourceError

ENV_VAR = "GENICAM_GENTL64_PATH"
HARVESTERS_LOG = logging.getLogger("liveaug.harvesters")
log = logging.getLogger(__name__)

_ACCESS = {
    0: "unknown",
    1: "available",
    2: "read-only",
    3: "no access",
    4: "busy",
    5: "open",
    6: "open read-only",
}


def bundled_simulator_cti() -> Path | None:
    """Path of ``viky.cti``, the simulator producer in the installed ``genicam`` package."""
    spec = importlib.util.find_spec("genicam")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "viky.cti"
    return path if path.is_file() else None


def _no_producer_fix() -> str:
    fix = (
        f"install the camera vendor's GenTL producer and set {ENV_VAR} to its folder, "
        "or pass --cti PATH"
    )
    viky = bundled_simulator_cti()
    return f"{fix} (simulated cameras: --cti {viky})" if viky else fix


def _check_producer(path: Path) -> Path:
    """Load the library once to tell a GenTL producer from any other file, with its reason."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        reason = str(exc).split(": ")[-1]
        raise SourceError(
            f"{path} is not a loadable GenTL producer ({reason})",
            "pass the camera vendor's .cti file for this platform (64-bit)",
        ) from None
    if not hasattr(lib, "GCInitLib"):
        raise SourceError(
            f"{path} is not a GenTL producer (no GCInitLib entry point)",
            "pass the camera vendor's .cti file",
        )
    return path


def find_producers(
    cti: Iterable[str | os.PathLike[str]] = (), *, use_env: bool = True
) -> list[Path]:
    """Every producer named by ``cti`` (files or folders) and, with ``use_env``, by the folders in
    ``GENICAM_GENTL64_PATH``; ``SourceError`` for a wrong path or when there is none at all."""
    found: list[Path] = []
    for item in cti:
        path = Path(item).expanduser()
        if path.is_dir():
            inside = sorted(path.glob("*.cti"))
            if not inside:
                raise SourceError(f"no GenTL producer (.cti) in folder {path}", _no_producer_fix())
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise SourceError(
                f"GenTL producer {path} does not exist",
                "check the --cti path: it names the camera vendor's .cti file or its folder",
            )
    if use_env:
        for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
            path = Path(entry).expanduser() if entry else None
            if path is not None and path.is_dir():
                found += sorted(path.glob("*.cti"))
            elif path is not None and path.suffix == ".cti" and path.is_file():
                found.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise SourceError("no GenTL producer found", _no_producer_fix())
    return [_check_producer(p) for p in unique]


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One camera a producer offers, as ``liveaug devices`` lists it."""

    index: int
    vendor: str
    model: str
    serial: str
    id: str
    access: str
    producer: str
    tl_type: str = ""
    display_name: str = ""

    @property
    def label(self) -> str:
        """Short human name: ``vendor model #serial``."""
        serial = f" #{self.serial}" if self.serial else ""
        return f"{self.vendor} {self.model}{serial}".strip()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return asdict(self)


def _info(dev: Any, name: str) -> Any:
    """One device-info field; producers leave optional ones unimplemented (GenTL raises)."""
    try:
        return getattr(dev, name)
    except Exception:  # genicam raises NotAvailable/NotImplemented for optional fields
        return None


def _entry(index: int, dev: Any) -> DeviceEntry:
    producer = ""
    try:
        producer = str(dev.parent.parent.parent.module.path_name)
    except Exception:  # the chain interface -> system -> producer is harvesters' own bookkeeping
        producer = ""
    status = _info(dev, "access_status")
    return DeviceEntry(
        index=index,
        vendor=str(_info(dev, "vendor") or ""),
        model=str(_info(dev, "model") or ""),
        serial=str(_info(dev, "serial_number") or ""),
        id=str(_info(dev, "id_") or ""),
        access=_ACCESS.get(status, str(status)) if status is not None else "unknown",
        producer=producer,
        tl_type=str(_info(dev, "tl_type") or ""),
        display_name=str(_info(dev, "display_name") or ""),
    )


def select(entries: Sequence[DeviceEntry], selector: str | int | None) -> DeviceEntry:
    """The one device ``selector`` names: an index (int), ``serial:``/``id:``/``model:``/
    ``index:`` prefixed text, or bare text tried as serial, then id, then model, then index."""
    if not entries:
        raise SourceError(
            "no camera found by the GenTL producers",
            "check the camera's cable and power, and that no other program holds it",
        )
    known = ", ".join(f"{e.index}: {e.label} (id {e.id})" for e in entries)
    if selector is None:
        if len(entries) == 1:
            return entries[0]
        raise SourceError(f"{len(entries)} cameras found", f"pick one with --device; {known}")
    if isinstance(selector, int):
        if 0 <= selector < len(entries):
            return entries[selector]
        raise SourceError(f"no camera at index {selector}", f"there are: {known}")
    key, _, value = selector.partition(":")
    fields = {"serial": "serial", "id": "id", "model": "model"}
    if value and key in (*fields, "index"):
        tries = [key]
    else:
        key, value, tries = "", selector, ["serial", "id", "model", "index"]
    for field in tries:
        if field == "index":
            if value.isdigit() and int(value) < len(entries):
                return entries[int(value)]
            continue
        hits = [e for e in entries if getattr(e, fields[field]) == value]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            serials = ", ".join(h.serial or h.id for h in hits)
            raise SourceError(
                f"{len(hits)} cameras match {field} {value!r}",
                f"pick one by serial: --device serial:<serial> ({serials})",
            )
    raise SourceError(f"no camera matches {selector!r}", f"liveaug devices lists them; {known}")


class _Hub:
    """The process's one harvester, shared by every open camera (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._harvester: Any = None
        self._files: tuple[Path, ...] = ()
        self._open = 0

    def _make(self, files: Sequence[Path]) -> None:
        from harvesters.core import Harvester, ParameterKey, ParameterSet

        if HARVESTERS_LOG.level == logging.NOTSET:
            HARVESTERS_LOG.setLevel(logging.CRITICAL)
        self._discard()
        harvester = Harvester(config=ParameterSet({ParameterKey.LOGGER: HARVESTERS_LOG}))
        for path in files:
            harvester.add_file(str(path))
        harvester.update()
        # harvesters skips a producer it cannot load without saying so: name it here
        loaded = {str(getattr(p, "path_name", "")) for p in getattr(harvester, "_producers", [])}
        failed = [f for f in files if str(f) not in loaded]
        if failed and len(failed) == len(files):
            harvester.reset()
            raise SourceError(
                f"GenTL producer {', '.join(map(str, failed))} could not be loaded",
                "it must be a 64-bit GenTL producer for this system; `ldd FILE` shows missing "
                "libraries (simulated cameras: the viky.cti of the genicam wheel)",
            )
        for f in failed:
            log.warning("GenTL producer %s could not be loaded; using the others", f)
        self._harvester, self._files = harvester, tuple(files)

    def _discard(self) -> None:
        if self._harvester is not None:
            try:
                self._harvester.reset()
            finally:
                self._harvester, self._files = None, ()

    def _ready(self, files: Sequence[Path]) -> Any:
        wanted = set(files)
        if self._harvester is not None and self._open:
            missing = wanted - set(self._files)
            if missing:
                raise SourceError(
                    f"cannot load producer {sorted(missing)[0]} while a camera of another "
                    "producer is open in this process",
                    "close the open camera first, or pass the same --cti to both",
                )
            return self._harvester
        self._make(files)
        return self._harvester

    def devices(self, files: Sequence[Path]) -> list[tuple[DeviceEntry, Any]]:
        """Entries (and harvesters' DeviceInfo) of every device the producers see now; the list is
        refreshed unless a camera is open, when it is the one seen at that camera's opening."""
        with self._lock:
            harvester = self._ready(files)
            wanted = {str(p) for p in files}
            pairs = [(_entry(i, d), d) for i, d in enumerate(harvester.device_info_list)]
            pairs = [(e, d) for e, d in pairs if not e.producer or e.producer in wanted]
            return [(_reindex(e, i), d) for i, (e, d) in enumerate(pairs)]

    def create(self, files: Sequence[Path], selector: str | int | None) -> tuple[Any, DeviceEntry]:
        """Open the selected device exclusively; returns harvesters' ImageAcquirer and its entry."""
        from harvesters.core import ParameterKey, ParameterSet

        with self._lock:
            pairs = self.devices(files)
            entry = select([e for e, _ in pairs], selector)
            info = pairs[entry.index][1]
            config = ParameterSet({ParameterKey.ENABLE_AUTO_CHUNK_DATA_UPDATE: False})
            restore = None
            if threading.current_thread() is threading.main_thread():
                # harvesters installs a SIGINT handler that silently destroys the camera: keep
                # Ctrl+C a KeyboardInterrupt the command can handle (close, keep the recording).
                restore = signal.getsignal(signal.SIGINT)
            try:
                acquirer = self._harvester.create(info, config=config)
            except Exception as exc:  # GenTL says why (access denied, busy) in its own words
                reason = str(exc).split("(Message from the source:")[0].strip()
                raise SourceError(
                    f"cannot open camera {entry.label} (access: {entry.access}): {reason}",
                    "close other programs using the camera (vendor viewer, another liveaug)",
                ) from None
            finally:
                if restore is not None:
                    signal.signal(signal.SIGINT, restore)
            self._open += 1
            return acquirer, entry

    def release(self, acquirer: Any) -> None:
        """Destroy one camera's acquirer; the harvester goes when the last camera does."""
        with self._lock:
            try:
                try:
                    acquirer.stop()
                except Exception:  # a lost device cannot be told to stop; destroy still frees it
                    HARVESTERS_LOG.debug("stop failed", exc_info=True)
                acquirer.destroy()
            except Exception:
                HARVESTERS_LOG.debug("destroy failed", exc_info=True)
            finally:
                self._open = max(0, self._open - 1)
                if not self._open:
                    self._discard()


def _reindex(entry: DeviceEntry, index: int) -> DeviceEntry:
    if entry.index == index:
        return entry
    fields = entry.to_dict()
    fields["index"] = index
    return DeviceEntry(**fields)


HUB = _Hub()


def list_devices(
    cti: Iterable[str | os.PathLike[str]] = (), *, use_env: bool = True
) -> list[DeviceEntry]:
    """Every camera the producers from ``cti`` and ``GENICAM_GENTL64_PATH`` offer."""
    files = find_producers(cti, use_env=use_env)
    with HUB._lock:
        entries = [e for e, _ in HUB.devices(files)]
        if not HUB._open:
            HUB._discard()
    return entries
