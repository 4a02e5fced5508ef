"""A simulated dish larger than the field of view: one culture, imaged wherever the stage is.

The dish holds one :class:`~liveaug.sources.simulated.biology.Population` on a grid of
``fields`` camera fields. Imaging renders the window under the stage with liveaug's simulator
(same cells, optics and camera model as :class:`~liveaug.sources.simulated.SimulatedMicroscope`)
in one of three channels: brightfield, a nuclear stain, the reporter. Time is experiment time:
``time_scale`` experiment seconds pass per wall-clock second (or the dish is advanced by hand),
and the culture is stepped in whole frame intervals up to the current time before each image.

The dish also keeps the light dose every part of it received (per channel, on a coarse grid) and
a log of true event onsets (reporter translocations, apoptosis commitments) — what the closed
loop bench scores against. Thread-safe: devices call it from the acquisition thread.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from liveaug.frame import Truth
from liveaug.sources.simulated.biology import Population
from liveaug.sources.simulated.config import SimulationConfig
from liveaug.sources.simulated.optics import (
    Sensor,
    TransmittedLight,
    blur,
    fluorescence_psf_sigma_px,
)
from liveaug.sources.simulated.render import Renderer
from liveaug.sources.simulated.truth import cell_table

#: Channel names of the simulated microscope, in the state device's order.
CHANNELS: tuple[str, ...] = ("brightfield", "nuclear", "reporter")
#: Relative excitation irradiance of each channel (brightfield light barely counts as a dose).
IRRADIANCE: dict[str, float] = {"brightfield": 0.02, "nuclear": 1.0, "reporter": 1.0}
#: Exposure at which each channel gives the simulator camera's configured photon counts, ms.
REFERENCE_EXPOSURE_MS: dict[str, float] = {"brightfield": 10.0, "nuclear": 100.0, "reporter": 100.0}
#: Side of one cell of the dose grid, px.
DOSE_BIN_PX = 16


@dataclass(frozen=True, slots=True)
class Onset:
    """A true event in the dish: when it began and where the cell was (dish µm, centred)."""

    kind: str
    cell_id: int
    sim_frame: int
    time_s: float
    x_um: float
    y_um: float


@dataclass
class Snap:
    """What the camera saw on its latest image (read by the source beside the pixels)."""

    number: int
    channel: str
    exposure_ms: float
    stage_um: tuple[float, float]
    time_s: float
    truth: Truth | None
    extra: dict[str, Any] = field(default_factory=dict)


class _Window:
    """The part of the population near one field, shifted to the field's pixel origin."""

    def __init__(self, cells: list[Any], next_id: int) -> None:
        self.cells = cells
        self.next_id = next_id


class SimulatedDish:
    """One simulated culture on a dish of ``fields`` (rows, cols) camera fields.

    Parameters
    ----------
    config : SimulationConfig
        The field (``height`` × ``width`` px is the camera sensor), optics, camera, biology.
    fields : (int, int)
        Dish size in fields; stage coordinates are µm from the dish centre.
    time_scale : float or None
        Experiment seconds per wall-clock second; None: time moves only by :meth:`advance`.
    """

    def __init__(
        self,
        config: SimulationConfig | None = None,
        *,
        fields: tuple[int, int] = (3, 3),
        time_scale: float | None = 60.0,
    ) -> None:
        self.config = config or SimulationConfig(truth=True).with_(biology__reporter=True)
        c = self.config
        self.fields = (max(1, int(fields[0])), max(1, int(fields[1])))
        self.px_um = c.optics.pixel_size_um
        self.dish_px = (c.height * self.fields[0], c.width * self.fields[1])
        self.time_scale = time_scale
        self._lock = threading.RLock()
        seeds = np.random.SeedSequence(c.seed).spawn(3)
        self.population = Population(
            c.biology, self.dish_px[0], self.dish_px[1], self.px_um, np.random.default_rng(seeds[0])
        )
        self.renderer = Renderer(c.height, c.width, self.px_um, c.seed)
        self.brightfield = TransmittedLight(c.height, c.width, c.optics)
        self.sensor = Sensor(c.camera, np.random.default_rng(seeds[1]))
        r_nuc = 0.42 * c.biology.cell_radius_um / self.px_um
        self._dapi_scale = c.camera.fluo_photons * math.pi * r_nuc**2 * 0.5
        self._sigma_dapi = fluorescence_psf_sigma_px(c.optics, 0.46)
        self._sigma_green = fluorescence_psf_sigma_px(c.optics, 0.52)
        self._t0 = time.monotonic()
        self._manual_s = 0.0
        shape = (-(-self.dish_px[0] // DOSE_BIN_PX), -(-self.dish_px[1] // DOSE_BIN_PX))
        self.dose = {ch: np.zeros(shape, np.float64) for ch in CHANNELS}
        """Light dose per channel on a grid of ``DOSE_BIN_PX`` px: irradiance × seconds."""
        self.onsets: list[Onset] = []
        self.exposures = 0
        # the devices' shared state: what the stage, the filter and the light source are doing
        self.stage_um = (0.0, 0.0)
        self.channel = CHANNELS[0]
        self.light_open = False
        self._light_since = 0.0
        self.last: Snap | None = None
        self._snaps = 0

    # -- geometry -----------------------------------------------------------------------------
    @property
    def field_um(self) -> tuple[float, float]:
        """Field of view (height, width) in µm."""
        return self.config.height * self.px_um, self.config.width * self.px_um

    @property
    def limits_um(self) -> tuple[float, float, float, float]:
        """Stage travel (x_min, x_max, y_min, y_max), µm: the field centre stays on the dish
        (beyond the culture's edge the field shows empty medium)."""
        half_w = self.dish_px[1] * self.px_um / 2
        half_h = self.dish_px[0] * self.px_um / 2
        return -half_w, half_w, -half_h, half_h

    def field_centres_um(self) -> list[tuple[float, float]]:
        """Stage positions of the dish's fields (row by row), the natural imaging plan."""
        fh, fw = self.field_um
        rows, cols = self.fields
        return [
            ((j - (cols - 1) / 2) * fw, (i - (rows - 1) / 2) * fh)
            for i in range(rows)
            for j in range(cols)
        ]

    def _origin_px(self, stage_um: tuple[float, float]) -> tuple[int, int]:
        """Dish pixel (x, y) of the field's top-left corner with the stage at ``stage_um``."""
        cx = stage_um[0] / self.px_um + self.dish_px[1] / 2
        cy = stage_um[1] / self.px_um + self.dish_px[0] / 2
        return round(cx - self.config.width / 2), round(cy - self.config.height / 2)

    def to_um(self, x_px: float, y_px: float) -> tuple[float, float]:
        """Dish pixel → stage µm (dish centre = 0)."""
        return (
            (x_px - self.dish_px[1] / 2) * self.px_um,
            (y_px - self.dish_px[0] / 2) * self.px_um,
        )

    # -- time -----------------------------------------------------------------------------------
    def now_s(self) -> float:
        """Experiment time, s."""
        if self.time_scale is None:
            return self._manual_s
        return (time.monotonic() - self._t0) * self.time_scale + self._manual_s

    def advance(self, seconds: float) -> None:
        """Move experiment time on by ``seconds`` (on top of the clock, if any)."""
        with self._lock:
            self._manual_s += float(seconds)

    def sync(self) -> None:
        """Step the culture up to the current experiment time (whole frame intervals)."""
        dt = self.config.biology.frame_interval_s
        with self._lock:
            target = int(self.now_s() // dt)
            while self.population.frame < target:
                self.population.step()
                self._log_onsets()

    def _log_onsets(self) -> None:
        """Record the cells whose translocation or apoptosis began on this step."""
        pop = self.population
        t = pop.frame * self.config.biology.frame_interval_s
        for cell in pop.cells:
            kind = None
            if cell.translocation_frame == pop.frame:
                kind = "translocation"
            elif cell.apo_t == 0.0:
                kind = "apoptosis"
            if kind is not None:
                x, y = self.to_um(cell.x, cell.y)
                self.onsets.append(Onset(kind, cell.id, pop.frame, t, x, y))

    # -- light ----------------------------------------------------------------------------------
    def _account(self, channel: str, stage_um: tuple[float, float], seconds: float) -> None:
        """Add the dose of ``seconds`` of ``channel`` light on the field at ``stage_um``."""
        if seconds <= 0:
            return
        x0, y0 = self._origin_px(stage_um)
        b = DOSE_BIN_PX
        gy0, gx0 = max(0, y0 // b), max(0, x0 // b)
        gy1 = max(gy0, (y0 + self.config.height) // b)
        gx1 = max(gx0, (x0 + self.config.width) // b)
        self.dose[channel][gy0:gy1, gx0:gx1] += IRRADIANCE[channel] * seconds

    def set_light(self, open_: bool) -> None:
        """Open or close the light source; while open the field under the stage is lit."""
        with self._lock:
            now = time.monotonic()
            if self.light_open and not open_:
                self._account(self.channel, self.stage_um, now - self._light_since)
            if open_ and not self.light_open:
                self._light_since = now
            self.light_open = open_

    def _settle_light(self) -> None:
        """Book the open light's dose so far (before the stage or filter change)."""
        if self.light_open:
            now = time.monotonic()
            self._account(self.channel, self.stage_um, now - self._light_since)
            self._light_since = now

    def move_stage(self, x_um: float, y_um: float) -> None:
        """Put the field centre at (x, y) µm; outside the travel range is a device error."""
        x_min, x_max, y_min, y_max = self.limits_um
        if not (x_min - 1e-6 <= x_um <= x_max + 1e-6 and y_min - 1e-6 <= y_um <= y_max + 1e-6):
            raise RuntimeError(
                f"stage move to ({x_um:.1f}, {y_um:.1f}) µm is outside the travel range "
                f"x {x_min:.0f}…{x_max:.0f}, y {y_min:.0f}…{y_max:.0f} µm"
            )
        with self._lock:
            self._settle_light()
            self.stage_um = (float(x_um), float(y_um))

    def set_channel(self, name: str) -> None:
        """Switch the filter/excitation to ``name`` (one of :data:`CHANNELS`)."""
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {name!r}; the dish has {CHANNELS}")
        with self._lock:
            self._settle_light()
            self.channel = name

    def field_dose(self, stage_um: tuple[float, float] | None = None) -> float:
        """Mean dose (all channels) over the field at ``stage_um`` (default: under the stage)."""
        x0, y0 = self._origin_px(stage_um or self.stage_um)
        b = DOSE_BIN_PX
        sl = (
            slice(max(0, y0 // b), max(0, (y0 + self.config.height) // b)),
            slice(max(0, x0 // b), max(0, (x0 + self.config.width) // b)),
        )
        return float(sum(d[sl].mean() if d[sl].size else 0.0 for d in self.dose.values()))

    def total_dose(self) -> float:
        """Dose summed over the dish and channels (irradiance × s × field-bins)."""
        return float(sum(d.sum() for d in self.dose.values()))

    # -- imaging --------------------------------------------------------------------------------
    def expose(self, exposure_ms: float, out: np.ndarray) -> Snap:
        """Image the field under the stage in the current channel into ``out`` (uint16)."""
        with self._lock:
            self.sync()
            channel, stage = self.channel, self.stage_um
            if not self.light_open:  # the light source is triggered by the exposure
                self._account(channel, stage, exposure_ms / 1000.0)
            self.exposures += 1
            image, truth = self._render(channel, stage, exposure_ms)
            out[...] = image
            self._snaps += 1
            self.last = Snap(self._snaps, channel, exposure_ms, stage, self.now_s(), truth)
            return self.last

    def _render(
        self, channel: str, stage_um: tuple[float, float], exposure_ms: float
    ) -> tuple[np.ndarray, Truth | None]:
        """The field at ``stage_um``: the channel's image, and with brightfield the truth of
        the window (stains, labels, cell table; fluorescence images skip it, it is costly)."""
        c = self.config
        H, W = c.height, c.width
        x0, y0 = self._origin_px(stage_um)
        margin = 3 * c.biology.cell_radius_um / self.px_um
        near = [
            cell
            for cell in self.population.cells
            if x0 - margin <= cell.x < x0 + W + margin and y0 - margin <= cell.y < y0 + H + margin
        ]
        saved = [(cell.x, cell.y) for cell in near]
        try:
            for cell in near:
                cell.x -= x0
                cell.y -= y0
            window = cast(Population, _Window(near, self.population.next_id))
            nc = {cell.id: cell.reporter_nc(self.population.frame, c.biology) for cell in near}
            maps = self.renderer.render(window, reporter_nc=nc)
            bf = channel == "brightfield"
            cells = cell_table(window, maps, self._dapi_scale, nc) if bf else {}
        finally:
            for cell, (x, y) in zip(near, saved, strict=True):
                cell.x, cell.y = x, y
        gain = exposure_ms / REFERENCE_EXPOSURE_MS[channel]
        cam = c.camera
        bg = np.float32(cam.fluo_background_e)
        dapi_e = None
        if channel != "reporter":
            dapi_e = blur(maps.dna, self._sigma_dapi) * np.float32(self._dapi_scale)
        if channel == "brightfield":
            sim_t = self.population.frame * c.biology.frame_interval_s
            bf = self.brightfield.intensity(maps.opl_um, sim_t, 0.0)
            image = self.sensor.expose(bf * np.float32(cam.photons * gain))
        elif channel == "nuclear":
            assert dapi_e is not None
            image = self.sensor.expose((dapi_e + bg) * np.float32(gain))
        else:
            rep = maps.reporter if maps.reporter is not None else np.zeros((H, W), np.float32)
            rep_e = blur(rep, self._sigma_green) * np.float32(cam.fluo_photons * 0.5)
            image = self.sensor.expose((rep_e + bg) * np.float32(gain))
        if channel != "brightfield" or dapi_e is None:
            return image, None
        mem_e = blur(maps.membrane, self._sigma_green) * np.float32(cam.fluo_photons * 0.6)
        truth = Truth(
            dapi=self.sensor.expose(dapi_e + bg),
            membrane=self.sensor.expose(mem_e + bg),
            cell_labels=maps.cell_labels,
            nucleus_labels=maps.nucleus_labels,
            cells=cells,
        )
        return image, truth

    def cell_position_um(self, cell_id: int) -> tuple[float, float] | None:
        """Where a living cell is now (stage µm), None once it has gone."""
        with self._lock:
            for cell in self.population.cells:
                if cell.id == cell_id:
                    return self.to_um(cell.x, cell.y)
        return None


_shared: dict[str, SimulatedDish] = {}
_shared_lock = threading.Lock()


def shared_dish(name: str = "default") -> SimulatedDish:
    """The dish that devices loaded from a Micro-Manager config file share (they are built
    without arguments there), made on first use with the default simulation."""
    with _shared_lock:
        if name not in _shared:
            _shared[name] = SimulatedDish()
        return _shared[name]
