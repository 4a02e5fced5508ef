"""The simulated microscope as a live :class:`~liveaug.sources.base.Source`.

Each :meth:`SimulatedMicroscope.read` advances the culture by one frame interval of experiment
time and images it: brightfield always, the reporter channel when configured, the truth stains and
labels unless ``truth=False``. Frames are delivered at ``fps`` (a time-lapse played live) or as fast
as they can be made; their timestamps are the simulator's own deterministic clock.
"""

from __future__ import annotations

import time

import numpy as np

from liveaug.errors import LiveaugError
from liveaug.frame import Frame, Truth
from liveaug.sources.base import SourceInfo
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

REPORTER = "reporter"
"""Channel name of the simulated fluorescent reporter."""


class SimulatedMicroscope:
    """A deterministic brightfield time-lapse of proliferating, migrating and dying cells.

    Parameters
    ----------
    config : SimulationConfig
        Optics, camera and biology; identical config (seed included) gives identical frames.
    fps : float or None
        Delivery rate for live use; None delivers each frame as soon as it is rendered.
    """

    def __init__(self, config: SimulationConfig | None = None, *, fps: float | None = None) -> None:
        self.config = config or SimulationConfig()
        self.fps = fps
        self._opened = False
        self._t0 = 0.0

    # -- Source protocol --------------------------------------------------------------------------
    def open(self) -> SourceInfo:
        """Seed the culture and precompute the optics; returns what frames will look like."""
        c = self.config
        if c.height < 32 or c.width < 32:
            raise LiveaugError(
                f"simulated field {c.height}x{c.width} is too small", "use at least 32x32 pixels"
            )
        seeds = np.random.SeedSequence(c.seed).spawn(4)
        px = c.optics.pixel_size_um
        self.population = Population(
            c.biology, c.height, c.width, px, np.random.default_rng(seeds[0])
        )
        self.renderer = Renderer(c.height, c.width, px, c.seed, c.biology)
        # the microscope's static imperfections (light field, debris, sensor defects) have a
        # generator of their own, so a clean configuration renders exactly as before they existed
        static = np.random.default_rng(seeds[3])
        self.optics = TransmittedLight(c.height, c.width, c.optics, static)
        self.sensor = Sensor(c.camera, np.random.default_rng(seeds[1]))
        self._defects = self.sensor.defects((c.height, c.width), static)
        self._drift_rng = np.random.default_rng(seeds[2])
        self._drift = 0.0
        self._index = 0
        self._t0 = time.monotonic()
        self._opened = True
        # DAPI photons for a whole G1 nucleus: peak ≈ fluo_photons on a ~0.42 r nucleus
        r_nuc = 0.42 * c.biology.cell_radius_um / px
        self._dapi_scale = c.camera.fluo_photons * np.pi * r_nuc**2 * 0.5
        self._sigma_dapi = fluorescence_psf_sigma_px(c.optics, 0.46)
        self._sigma_green = fluorescence_psf_sigma_px(c.optics, 0.52)
        return self.info

    @property
    def info(self) -> SourceInfo:
        """What this source delivers."""
        c = self.config
        return SourceInfo(
            name=f"simulated microscope (seed {c.seed})",
            shape=(c.height, c.width),
            dtype=c.camera.dtype,
            bit_depth=c.camera.bit_depth,
            pixel_size_um=c.optics.pixel_size_um,
            frame_rate_hz=self.fps,
            channel_names=(REPORTER,) if c.biology.reporter else (),
            has_truth=c.truth,
            settings={"simulation": c.to_dict()},
        )

    def read(self, timeout_s: float | None = None) -> Frame:
        """Render the next frame, waiting until it is due when ``fps`` is set."""
        if not self._opened:
            self.open()
        if self.fps:
            due = self._t0 + self._index / self.fps
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        frame = self._render()
        self.population.step()
        self._drift = 0.98 * self._drift + float(self._drift_rng.normal(0, 0.002))
        self._index += 1
        return frame

    def close(self) -> None:
        """Nothing to release; present for the Source protocol."""
        self._opened = False

    def __iter__(self):
        """Iterate frames forever (use ``itertools.islice``)."""
        while True:
            yield self.read()

    # -- imaging --------------------------------------------------------------------------------
    def _render(self) -> Frame:
        c = self.config
        i = self._index
        sim_time_s = i * c.biology.frame_interval_s
        nc = None
        if c.biology.reporter:
            nc = {
                cell.id: cell.reporter_nc(self.population.frame, c.biology)
                for cell in self.population.cells
            }
        maps = self.renderer.render(self.population, reporter_nc=nc)
        cam = c.camera
        bf = self.optics.intensity(maps.opl_um, sim_time_s, self._drift)
        image = self.sensor.expose(bf * np.float32(cam.photons), self._defects)
        channels = {}
        if maps.reporter is not None:
            rep = blur(maps.reporter, self._sigma_green) * np.float32(cam.fluo_photons * 0.5)
            channels[REPORTER] = self.sensor.expose(rep + np.float32(cam.fluo_background_e))
        truth = None
        if c.truth:
            dapi_e = blur(maps.dna, self._sigma_dapi) * np.float32(self._dapi_scale)
            mem_e = blur(maps.membrane, self._sigma_green) * np.float32(cam.fluo_photons * 0.6)
            bg = np.float32(cam.fluo_background_e)
            truth = Truth(
                dapi=self.sensor.expose(dapi_e + bg),
                membrane=self.sensor.expose(mem_e + bg),
                cell_labels=maps.cell_labels,
                nucleus_labels=maps.nucleus_labels,
                cells=cell_table(self.population, maps, self._dapi_scale, nc),
            )
        return Frame(
            image=image,
            index=i,
            timestamp_ns=round(i * 1e9 / (self.fps or 30.0)),
            clock="device",
            pixel_format="Mono8" if cam.bit_depth <= 8 else f"Mono{cam.bit_depth}",
            bit_depth=cam.bit_depth,
            pixel_size_um=c.optics.pixel_size_um,
            channels=channels,
            meta={
                "sim_time_s": sim_time_s,
                "defocus_um": c.optics.defocus_um,
                "contrast": c.optics.contrast,
            },
            truth=truth,
        )
