"""Cell population dynamics: migration, growth, the cell cycle, division, apoptosis, a reporter.

Time advances one frame at a time. Every cell carries its own phase durations (drawn at birth),
so a population desynchronises as real cultures do. Geometry is in pixels; durations are converted
from hours with the frame interval. Nothing here draws: :mod:`render` turns a cell's state into
its appearance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from liveaug.sources.simulated.config import Biology

#: Cell-cycle phases, in order; the integer codes used in truth tables index this tuple.
PHASES: tuple[str, ...] = ("G1", "S", "G2", "M")
G1, S, G2, M = range(4)

#: Apoptosis stages, the integer codes of the ``apoptosis_stage`` truth column.
APOPTOSIS_STAGES: tuple[str, ...] = (
    "none",
    "shrinking",
    "condensed",
    "fragmented",
    "bodies",
    "detaching",
)
#: Stage boundaries on the apoptosis progress axis (0 = commitment, 1 = gone).
_APO_BOUNDS = (0.0, 0.25, 0.5, 0.7, 0.88, 1.0)

#: Reporter localisation classes and their nuclear/cytoplasmic concentration ratios.
REPORTER_CLASSES: tuple[str, ...] = ("cytoplasmic", "mixed", "nuclear")
_REPORTER_NC = (0.35, 1.0, 3.0)
_REPORTER_P = (0.6, 0.3, 0.1)


@dataclass
class Cell:
    """Mutable state of one cell (positions in px, times in frames)."""

    id: int
    parent_id: int
    x: float
    y: float
    vx: float
    vy: float
    radius0: float
    """Spread radius right after birth (px)."""
    phase: int
    phase_t: float
    phase_len: np.ndarray
    """Frames spent in G1, S, G2, M."""
    shape_amp: np.ndarray
    shape_phase: np.ndarray
    angle: float
    nuc_offset: tuple[float, float]
    nuc_aspect: float
    nuc_angle: float
    texture_origin: tuple[int, int]
    expression: float
    reporter_class: int
    born_t: float = 0.0
    age: float = 0.0
    apo_t: float = -1.0
    """Frames since commitment to apoptosis; -1 while healthy."""
    apo_len: float = 1.0
    dna_at_commit: float = 1.0
    translocation_frame: int = -1
    """Simulation frame at which a cytoplasmic reporter started moving into the nucleus."""
    cache_key: tuple | None = None
    template: dict | None = field(default=None, repr=False)

    # -- derived state --------------------------------------------------------------------------
    @property
    def apoptotic(self) -> bool:
        """Committed to apoptosis (irreversible)."""
        return self.apo_t >= 0

    @property
    def apo_progress(self) -> float:
        """0 at commitment … 1 when the cell has detached and gone."""
        return 0.0 if self.apo_t < 0 else min(1.0, self.apo_t / self.apo_len)

    @property
    def apoptosis_stage(self) -> int:
        """Index into :data:`APOPTOSIS_STAGES`."""
        if not self.apoptotic:
            return 0
        p = self.apo_progress
        for i in range(len(_APO_BOUNDS) - 1):
            if p < _APO_BOUNDS[i + 1]:
                return i + 1
        return len(_APO_BOUNDS) - 1

    @property
    def phase_progress(self) -> float:
        """Fraction of the current phase completed."""
        return min(1.0, self.phase_t / self.phase_len[self.phase])

    @property
    def growth(self) -> float:
        """Fraction of interphase (G1+S+G2) completed: area grows from 1x to 2x with it."""
        interphase = float(self.phase_len[:3].sum())
        done = float(self.phase_len[: min(self.phase, 3)].sum())
        if self.phase < M:
            done += self.phase_t
        return min(1.0, done / interphase)

    @property
    def dna_content(self) -> float:
        """DNA per cell in units of the diploid (2N) genome: 1 in G1, rising in S, 2 in G2/M."""
        if self.apoptotic:
            return self.dna_at_commit
        if self.phase == G1:
            return 1.0
        if self.phase == S:
            return 1.0 + self.phase_progress
        return 2.0

    def reporter_nc(self, frame: int, biology: Biology) -> float:
        """True nuclear/cytoplasmic concentration ratio of the reporter at ``frame``."""
        base = _REPORTER_NC[self.reporter_class]
        if self.translocation_frame < 0 or frame < self.translocation_frame:
            return base
        k = min(1.0, (frame - self.translocation_frame + 1) / biology.translocation_frames)
        return float(math.exp((1 - k) * math.log(base) + k * math.log(_REPORTER_NC[2])))


class Population:
    """All cells in (and around) the field of view, advanced frame by frame."""

    def __init__(
        self,
        biology: Biology,
        height: int,
        width: int,
        pixel_size_um: float,
        rng: np.random.Generator,
    ) -> None:
        self.bio = biology
        self.height, self.width = height, width
        self.px_um = pixel_size_um
        self.rng = rng
        self.frame = 0
        self.next_id = 1
        hours = 3600.0 / biology.frame_interval_s
        self._phase_mean = np.array([biology.g1_h, biology.s_h, biology.g2_h, biology.m_h]) * hours
        self._apo_len = biology.apoptosis_h * hours
        cycle_frames = float(self._phase_mean.sum())
        self._apo_hazard = -math.log(max(1e-9, 1 - biology.apoptosis_fraction)) / cycle_frames
        self._transloc_hazard = biology.translocation_rate_per_h / hours
        minutes = biology.frame_interval_s / 60.0
        self._speed = biology.speed_um_per_min * minutes / pixel_size_um
        self._persist = math.exp(-minutes / biology.persistence_min)
        self.cells: list[Cell] = []
        self._seed_population()

    # -- creation -------------------------------------------------------------------------------
    def _radius0(self) -> float:
        r_um = self.bio.cell_radius_um * float(np.exp(self.rng.normal(0, 0.12)))
        return r_um / self.px_um

    def _new_cell(self, x: float, y: float, parent: Cell | None) -> Cell:
        rng = self.rng
        lens = self._phase_mean * np.exp(rng.normal(0, self.bio.cycle_cv, 4))
        lens = np.maximum(lens, 2.0)
        cell = Cell(
            id=self.next_id,
            parent_id=parent.id if parent else 0,
            x=x,
            y=y,
            vx=float(rng.normal(0, self._speed)),
            vy=float(rng.normal(0, self._speed)),
            radius0=parent.radius0 * float(np.exp(rng.normal(0, 0.05)))
            if parent
            else self._radius0(),
            phase=G1,
            phase_t=0.0,
            phase_len=lens,
            shape_amp=rng.uniform(0.02, 0.16, 5) / np.arange(1, 6) ** 0.5,
            shape_phase=rng.uniform(0, 2 * np.pi, 5),
            angle=float(rng.uniform(0, np.pi)),
            nuc_offset=(float(rng.normal(0, 0.12)), float(rng.normal(0, 0.12))),
            nuc_aspect=float(rng.uniform(1.0, 1.45)),
            nuc_angle=float(rng.uniform(0, np.pi)),
            texture_origin=(int(rng.integers(0, 896)), int(rng.integers(0, 896))),
            expression=parent.expression if parent else float(np.exp(rng.normal(0, 0.35))),
            reporter_class=parent.reporter_class if parent else int(rng.choice(3, p=_REPORTER_P)),
            born_t=float(self.frame),
        )
        self.next_id += 1
        return cell

    def _seed_population(self) -> None:
        """An asynchronous culture at the configured coverage, a few cells already dying."""
        b = self.bio
        mean_area = math.pi * (b.cell_radius_um / self.px_um) ** 2 * 1.45
        n = max(1, round(b.density * self.height * self.width / mean_area))
        total = float(self._phase_mean.sum())
        for _ in range(n):
            cell = self._new_cell(
                float(self.rng.uniform(0, self.width)),
                float(self.rng.uniform(0, self.height)),
                None,
            )
            # an age drawn uniformly over the cycle, then walked to its phase
            t = float(self.rng.uniform(0, total * 0.999))
            for ph in range(4):
                if t < cell.phase_len[ph] or ph == M:
                    cell.phase, cell.phase_t = ph, min(t, cell.phase_len[ph] - 1e-3)
                    break
                t -= cell.phase_len[ph]
            cell.age = t
            if self.rng.random() < b.initial_apoptotic_fraction:
                if cell.phase == M:
                    cell.phase, cell.phase_t = G2, 0.0
                self._commit_apoptosis(cell)
                cell.apo_t = float(self.rng.uniform(0, 0.85)) * cell.apo_len
            self.cells.append(cell)
        for _ in range(20):
            self._repel(strength=0.5)

    def _commit_apoptosis(self, cell: Cell) -> None:
        cell.dna_at_commit = cell.dna_content
        cell.apo_t = 0.0
        cell.apo_len = self._apo_len * float(np.exp(self.rng.normal(0, 0.15)))

    # -- dynamics -------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance every cell by one frame: move, grow, progress, divide, die."""
        self.frame += 1
        rng = self.rng
        born: list[Cell] = []
        gone: list[Cell] = []
        crowded = self.coverage() > self.bio.max_confluence
        for cell in self.cells:
            cell.age += 1
            # persistent random walk (cells in M and dying cells barely move)
            noise = self._speed * math.sqrt(1 - self._persist**2)
            cell.vx = self._persist * cell.vx + noise * float(rng.normal())
            cell.vy = self._persist * cell.vy + noise * float(rng.normal())
            slow = 0.2 if (cell.phase == M or cell.apoptotic) else 1.0
            cell.x += cell.vx * slow
            cell.y += cell.vy * slow
            if cell.apoptotic:
                cell.apo_t += 1
                if cell.apo_progress >= 1.0:
                    gone.append(cell)
                elif cell.apoptosis_stage == 5:  # detaching: drifts off faster
                    cell.x += cell.vx * 2
                    cell.y += cell.vy * 2
                continue
            if cell.phase < M and rng.random() < self._apo_hazard:
                self._commit_apoptosis(cell)
                continue
            if (
                self.bio.reporter
                and cell.reporter_class == 0
                and cell.translocation_frame < 0
                and rng.random() < self._transloc_hazard
            ):
                cell.translocation_frame = self.frame
            if cell.phase == G1 and crowded:
                continue  # contact inhibition: a confluent culture arrests in G1
            cell.phase_t += 1
            if cell.phase_t >= cell.phase_len[cell.phase]:
                if cell.phase == M:
                    born.extend(self._divide(cell))
                    gone.append(cell)
                else:
                    cell.phase += 1
                    cell.phase_t = 0.0
        for cell in gone:
            self.cells.remove(cell)
        self.cells.extend(born)
        self._repel(strength=0.25)
        self._keep_in_field()

    def coverage(self) -> float:
        """Nominal area of all cells over the field area (above 1: cells press together)."""
        area = sum(c.radius0**2 * (1.0 + c.growth) for c in self.cells) * math.pi
        return area / (self.height * self.width)

    def _divide(self, mother: Cell) -> list[Cell]:
        """Two daughters along the spindle axis, each with half the mother's area."""
        axis = mother.angle + math.pi / 2
        off = 0.35 * mother.radius0
        daughters = []
        for sign in (-1, 1):
            d = self._new_cell(
                mother.x + sign * off * math.cos(axis),
                mother.y + sign * off * math.sin(axis),
                mother,
            )
            d.vx = mother.vx + sign * 0.3 * self._speed * math.cos(axis)
            d.vy = mother.vy + sign * 0.3 * self._speed * math.sin(axis)
            if mother.translocation_frame >= 0:
                d.reporter_class = 2  # the protein stays nuclear in both daughters
            daughters.append(d)
        return daughters

    def _repel(self, strength: float) -> None:
        """Push overlapping cell centres apart (contact inhibition of locomotion)."""
        if len(self.cells) < 2:
            return
        pos = np.array([[c.x, c.y] for c in self.cells])
        rad = np.array([c.radius0 * math.sqrt(1 + c.growth) * 0.8 for c in self.cells])
        diff = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(pos))
        overlap = np.clip(rad[:, None] + rad[None, :] - dist, 0, None)
        np.fill_diagonal(overlap, 0)
        push = (diff / dist[..., None] * overlap[..., None]).sum(1) * (0.5 * strength)
        for cell, (px, py) in zip(self.cells, push, strict=True):
            cell.x += float(px)
            cell.y += float(py)

    def _keep_in_field(self) -> None:
        """Reflect centres at the borders (cells may hang over the edge, as on a real slide)."""
        for cell in self.cells:
            if cell.x < 0 or cell.x >= self.width:
                cell.vx = -cell.vx
                cell.x = min(max(cell.x, 0.0), self.width - 1.0)
            if cell.y < 0 or cell.y >= self.height:
                cell.vy = -cell.vy
                cell.y = min(max(cell.y, 0.0), self.height - 1.0)
