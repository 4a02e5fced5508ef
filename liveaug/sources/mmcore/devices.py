"""The simulated microscope as Micro-Manager devices written in Python (pymmcore-plus UniMMCore).

Four devices share one :class:`~liveaug.sources.mmcore.dish.SimulatedDish`, as the parts of a
real microscope share one sample: a camera that images the field under the stage, an XY stage
(moves outside its travel range fail as a real controller's would), a filter/excitation state
device (brightfield, nuclear stain, reporter) and a light source. The light is triggered by each
exposure (an LED wired to the camera's fire output) and also lights the field continuously while
the shutter is open; the dish books the dose either way. :func:`simulated_core` loads them into a
core with a ``Channel`` group and a pixel-size configuration, ready for pymmcore-plus' MDA engine.
Built without a dish (as a Micro-Manager config file's ``#py pyDevice`` lines do, see
``simulated.cfg`` beside this module), the devices share :func:`~.dish.shared_dish`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

import numpy as np
from pymmcore_plus.core._constants import PixelFormat
from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    SimpleCameraDevice,
    StateDevice,
    UniMMCore,
    XYStageDevice,
)

from liveaug.sources.mmcore.dish import (
    CHANNELS,
    REFERENCE_EXPOSURE_MS,
    SimulatedDish,
    shared_dish,
)

#: Device labels of the simulated microscope.
CAMERA, STAGE, FILTER, LIGHT = "Camera", "XYStage", "Filter", "Light"
#: Config group that selects a channel (the MDA's ``channel.group``).
CHANNEL_GROUP = "Channel"


class DishCamera(SimpleCameraDevice):
    """A 16-bit camera imaging the dish field under the stage in the current channel.

    ``FailEvery`` (property, 0 = never) makes every n-th image fail as a camera that loses
    frames does — how the tests see acquisition survive a camera fault.
    """

    def __init__(self, dish: SimulatedDish | None = None) -> None:
        self.dish = dish or shared_dish()
        self._exposure = REFERENCE_EXPOSURE_MS["brightfield"]
        self._snaps = 0
        super().__init__()
        self.register_property(
            "FailEvery",
            default_value=0,
            limits=(0, 1_000_000),
            getter=DishCamera._get_fail_every,
            setter=DishCamera._set_fail_every,
        )
        self._fail_every = 0

    def _get_fail_every(self) -> int:
        """Every how many images one fails (0: none)."""
        return self._fail_every

    def _set_fail_every(self, value: int) -> None:
        """Set the simulated fault rate."""
        self._fail_every = int(value)

    def get_exposure(self) -> float:
        """Exposure, ms."""
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure, ms (must be positive)."""
        if exposure <= 0:
            raise ValueError(f"exposure must be positive, got {exposure} ms")
        self._exposure = float(exposure)

    def sensor_shape(self) -> tuple[int, int]:
        """(height, width) of the simulated sensor."""
        return self.dish.config.height, self.dish.config.width

    def dtype(self) -> np.dtype:
        """Pixel type of the simulated camera (uint8 up to 8 bits, else uint16)."""
        return np.dtype(self.dish.config.camera.dtype)

    def get_pixel_format(self) -> PixelFormat:
        """Pixel format (Mono12: 12 significant bits in a 16-bit buffer)."""
        bits = self.dish.config.camera.bit_depth
        return PixelFormat("Mono8" if bits <= 8 else f"Mono{bits}")

    def snap(self, buffer: np.ndarray) -> Mapping:
        """Expose one image of the field under the stage into ``buffer``."""
        self._snaps += 1
        if self._fail_every and self._snaps % self._fail_every == 0:
            raise RuntimeError(f"simulated camera fault on image {self._snaps}")
        snap = self.dish.expose(self._exposure, buffer)
        x, y = snap.stage_um
        return {"liveaug_channel": snap.channel, "liveaug_stage_um": f"{x:.2f},{y:.2f}"}


class DishStage(XYStageDevice):
    """An XY stage over the dish; coordinates are µm from the dish centre."""

    def __init__(self, dish: SimulatedDish | None = None) -> None:
        self.dish = dish or shared_dish()
        super().__init__()

    def set_position_um(self, x: float, y: float) -> None:
        """Move (raises outside the travel range, as a real controller reports a limit)."""
        self.dish.move_stage(x, y)
        self.core.events.XYStagePositionChanged.emit(self.get_label(), x, y)

    def get_position_um(self) -> tuple[float, float]:
        """Current (x, y), µm."""
        return self.dish.stage_um

    def set_origin_x(self) -> None:
        """Not supported: the dish centre is the origin."""
        raise NotImplementedError("the simulated stage's origin is the dish centre")

    def set_origin_y(self) -> None:
        """Not supported: the dish centre is the origin."""
        raise NotImplementedError("the simulated stage's origin is the dish centre")

    def home(self) -> None:
        """Go to the dish centre."""
        self.dish.move_stage(0.0, 0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""


class DishFilter(StateDevice):
    """Filter cube / excitation selector: one state per channel of :data:`CHANNELS`."""

    def __init__(self, dish: SimulatedDish | None = None) -> None:
        self.dish = dish or shared_dish()
        self._state = 0
        super().__init__(dict(enumerate(CHANNELS)))

    def get_state(self) -> int:
        """Index of the current channel."""
        return self._state

    def set_state(self, position: int) -> None:
        """Switch the light path to channel ``position``."""
        self.dish.set_channel(CHANNELS[int(position)])
        self._state = int(position)


class DishLight(ShutterDevice):
    """The light source: exposures trigger it; open, it lights the field continuously."""

    def __init__(self, dish: SimulatedDish | None = None) -> None:
        self.dish = dish or shared_dish()
        super().__init__()

    def get_open(self) -> bool:
        """Whether the light is on continuously."""
        return self.dish.light_open

    def set_open(self, open: bool) -> None:
        """Switch the continuous light on or off (the dish books the dose)."""
        self.dish.set_light(bool(open))


@contextlib.contextmanager
def quiet_discovery() -> Iterator[None]:
    """Silence pymmcore-plus' error about a missing Micro-Manager installation (Python devices
    need none; a config naming C++ adapters fails later with its own message)."""
    logger = logging.getLogger("pymmcore-plus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def new_core() -> UniMMCore:
    """A UniMMCore, without the discovery error when no Micro-Manager is installed."""
    with quiet_discovery():
        return UniMMCore()


def simulated_core(dish: SimulatedDish, core: UniMMCore | None = None) -> UniMMCore:
    """A core with the dish's camera, stage, filter and light loaded and configured.

    The ``Channel`` group has one preset per channel; the pixel size configuration carries the
    simulator's sample pixel size and a pixel→stage affine without rotation (image +x is
    stage +x).
    """
    core = core or new_core()
    core.loadPyDevice(CAMERA, DishCamera(dish))
    core.loadPyDevice(STAGE, DishStage(dish))
    core.loadPyDevice(FILTER, DishFilter(dish))
    core.loadPyDevice(LIGHT, DishLight(dish))
    core.initializeAllDevices()
    core.setCameraDevice(CAMERA)
    core.setXYStageDevice(STAGE)
    core.setShutterDevice(LIGHT)
    for name in CHANNELS:
        core.defineConfig(CHANNEL_GROUP, name, FILTER, "Label", name)
    core.setChannelGroup(CHANNEL_GROUP)
    core.setConfig(CHANNEL_GROUP, CHANNELS[0])
    core.definePixelSizeConfig("simulated")
    core.setPixelSizeUm("simulated", dish.px_um)
    px = dish.px_um
    core.setPixelSizeAffine("simulated", [px, 0.0, 0.0, 0.0, px, 0.0])
    core.setPixelSizeConfig("simulated")
    return core
