"""Turn cell states into maps: optical path length, DNA, membrane, reporter, instance labels.

Each cell is drawn once into a small local *template* (distance field, optical path length, DNA
density, nucleus mask) that is cached and redrawn only when its look changes (growth, rounding,
condensation …), then pasted at its position. Touching cells share the field by a weighted
distance competition (each pixel goes to the cell whose boundary it is deepest inside), which gives
confluent monolayers polygonal, gap-free borders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from liveaug.sources.simulated.biology import Cell, M, Population
from liveaug.sources.simulated.config import Biology

#: Refractive index excess over the medium of cytoplasm and nucleus (unitless).
DN_CYTO = 0.022
DN_NUCLEUS = 0.034
#: Condensed chromatin (mitotic chromosomes, pyknotic and fragmented apoptotic nuclei) is denser
#: than interphase nucleoplasm and stands out in brightfield: its extra thickness at the peak of
#: the DNA density, µm at DN_NUCLEUS.
CONDENSED_UM = 2.5


@dataclass(frozen=True, slots=True)
class Maps:
    """Noise-free object maps of one frame, at frame resolution."""

    opl_um: np.ndarray
    """Optical path length difference to the medium, µm."""
    dna: np.ndarray
    """DNA density, in units where a G1 (2N) cell integrates to 1."""
    membrane: np.ndarray
    """Plasma-membrane stain density (borders bright, a faint cell-wide signal)."""
    reporter: np.ndarray | None
    """Reporter concentration (None without a reporter channel)."""
    cell_labels: np.ndarray
    nucleus_labels: np.ndarray


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian-filtered noise, the texture cells sample from."""
    n = rng.standard_normal((size, size), dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / n.std()


class Renderer:
    """Rasterises a :class:`Population` into :class:`Maps` (caching per-cell templates)."""

    def __init__(
        self,
        height: int,
        width: int,
        pixel_size_um: float,
        seed: int,
        biology: Biology | None = None,
    ) -> None:
        self.height, self.width = height, width
        self.px_um = pixel_size_um
        rng = np.random.default_rng([seed, 7])
        self._texture = _smooth_noise(rng, 1024, 0.9)
        self._chromatin = _smooth_noise(rng, 1024, 0.7)
        bio = biology or Biology()
        self._nucleus_gain = np.float32(bio.nucleus_contrast)
        self._substrate: np.ndarray | None = None
        if bio.substrate_texture_um > 0:  # a static matrix under the cells, a few µm grain
            sub = rng.standard_normal((height, width), dtype=np.float32)
            sub = cv2.GaussianBlur(sub, (0, 0), max(1.0, 1.5 / pixel_size_um))
            self._substrate = sub * np.float32(bio.substrate_texture_um / max(sub.std(), 1e-6))

    # -- per-cell look ----------------------------------------------------------------------------
    @staticmethod
    def look(cell: Cell) -> tuple:
        """Quantised appearance of a cell; the template is redrawn only when this changes."""
        radius = cell.radius0 * math.sqrt(1.0 + cell.growth)
        spread = min(1.0, cell.age / max(1.0, 0.05 * float(cell.phase_len.sum())))
        roundness = 1.0 - spread
        radius *= 0.6 + 0.4 * spread
        mitosis = 0.0
        if cell.phase == M and not cell.apoptotic:
            roundness, mitosis = 1.0, min(0.999, cell.phase_progress)
            radius = cell.radius0 * math.sqrt(2.0) * 0.58
        cond = bleb = 0.0
        frags = bodies = 0
        fade = 1.0
        if cell.apoptotic:
            a = cell.apo_progress
            roundness = max(roundness, min(1.0, a / 0.25))
            radius *= 1.0 - 0.45 * min(1.0, a / 0.25)
            bleb = max(0.0, math.sin(math.pi * min(1.0, max(0.0, (a - 0.12) / 0.6))))
            cond = min(1.0, max(0.0, (a - 0.2) / 0.3))
            frags = 3 + cell.id % 4 if a >= 0.5 else 0
            bodies = 3 + cell.id % 3 if a >= 0.7 else 0
            fade = 1.0 - max(0.0, (a - 0.88) / 0.12)
        return (
            round(radius * 2) / 2,
            round(roundness, 1),
            round(mitosis, 1),
            round(cond, 1),
            round(bleb, 1),
            frags,
            bodies,
            round(fade, 1),
            round(cell.dna_content, 1),
        )

    def template(self, cell: Cell) -> dict:
        """The cell's local maps, from cache when its look is unchanged."""
        key = self.look(cell)
        if cell.cache_key != key:
            cell.template = self._draw(cell, *key)
            cell.cache_key = key
        assert cell.template is not None
        return cell.template

    def _draw(
        self,
        cell: Cell,
        radius: float,
        roundness: float,
        mitosis: float,
        cond: float,
        bleb: float,
        frags: int,
        bodies: int,
        fade: float,
        _dna: float,
    ) -> dict:
        """Draw one cell's template (distance, OPL, DNA density, nucleus mask) around (0, 0)."""
        rng = np.random.default_rng([cell.id, frags, bodies, int(bleb * 10)])
        h = math.ceil(radius * 1.45) + 3
        yy, xx = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float32)
        r = np.hypot(xx, yy)
        th = np.arctan2(yy, xx)
        px = self.px_um
        # cell body outline: smooth lobes (spread cells) + blebs (dying cells)
        k = np.arange(1, 6, dtype=np.float32)[:, None, None]
        lobes = (
            cell.shape_amp[:, None, None]
            * np.cos(k * (th - cell.angle) + cell.shape_phase[:, None, None])
        ).sum(0)
        rad_th = radius * (1.0 + (1.0 - roundness) * 1.6 * lobes)
        if bleb > 0:
            kb = int(rng.integers(8, 13))
            rad_th = (
                rad_th
                + radius
                * 0.16
                * bleb
                * np.maximum(0, np.cos(kb * th + float(rng.uniform(0, 6.3)))) ** 6
            )
        d = r / np.maximum(rad_th, 1e-3)
        if mitosis > 0.75:  # cytokinesis: two lobes pinching apart
            q = (mitosis - 0.75) / 0.25
            c = 0.55 * radius * q
            ax = cell.angle + math.pi / 2
            ox, oy = c * math.cos(ax), c * math.sin(ax)
            rr = radius * (1 - 0.2 * q)
            d = np.minimum(np.hypot(xx - ox, yy - oy), np.hypot(xx + ox, yy + oy)) / rr
        height = (1 - roundness) * 1.5 + roundness * 1.8 * radius * px
        if bodies:
            ang = rng.uniform(0, 2 * np.pi, bodies)
            dist = rng.uniform(0.15, 0.7, bodies) * radius
            rb = rng.uniform(0.3, 0.45, bodies) * radius
            d = np.full_like(r, np.inf)
            for a_, s_, rb_ in zip(ang, dist, rb, strict=True):
                d = np.minimum(d, np.hypot(xx - s_ * math.cos(a_), yy - s_ * math.sin(a_)) / rb_)
            height = 1.6 * float(rb.mean()) * px
        inside = np.clip(1.0 - d * d, 0.0, 1.0)
        expo = 0.7 - 0.2 * roundness
        t_cell = height * inside**expo
        # nucleus (interphase / apoptotic) or chromosomes (mitosis)
        a_n = 0.42 * radius * math.sqrt(cell.nuc_aspect) * (1 - 0.55 * cond)
        b_n = 0.42 * radius / math.sqrt(cell.nuc_aspect) * (1 - 0.55 * cond)
        off = 1.0 - roundness
        nx, ny = cell.nuc_offset[0] * radius * off, cell.nuc_offset[1] * radius * off
        ca, sa = math.cos(cell.nuc_angle), math.sin(cell.nuc_angle)
        u = ((xx - nx) * ca + (yy - ny) * sa) / a_n
        v = (-(xx - nx) * sa + (yy - ny) * ca) / b_n
        dn2 = u * u + v * v
        t_nuc = np.zeros_like(r)
        tex = self._patch(self._chromatin, cell.texture_origin, 2 * h + 1)
        if mitosis > 0:
            dna = self._chromosomes(xx, yy, cell.angle, 0.42 * radius * 1.2, mitosis)
            t_nuc = CONDENSED_UM * dna / max(float(dna.max()), 1e-6)
        elif frags:
            dna = np.zeros_like(r)
            ang = rng.uniform(0, 2 * np.pi, frags)
            ring = rng.uniform(0.2, 0.9, frags) * a_n * 1.8
            rf = a_n * 0.45
            for a_, s_ in zip(ang, ring, strict=True):
                df = (xx - nx - s_ * math.cos(a_)) ** 2 + (yy - ny - s_ * math.sin(a_)) ** 2
                dna += np.clip(1 - df / rf**2, 0, 1) ** 0.5
            t_nuc = CONDENSED_UM * dna / max(float(dna.max()), 1e-6)
        else:
            core = np.clip(1.0 - dn2, 0.0, 1.0)
            envelope = np.exp(-(((np.sqrt(dn2) - 1.0) / 0.12) ** 2))
            t_nuc = (1 - roundness) * (2.2 * core**0.5 + 0.9 * envelope)
            t_nuc += CONDENSED_UM * cond * core**0.5  # a condensing (pyknotic) nucleus
            chrom = 1.0 + (0.35 - 0.25 * cond) * tex
            dna = core**0.5 * np.clip(chrom, 0.2, None) * (1.0 + 3.0 * cond * core)
        nuc = dna > 0.05 * max(float(dna.max()), 1e-6)
        dna = np.where(nuc, dna, 0).astype(np.float32)
        dna /= max(float(dna.sum()), 1e-6)
        # nucleoli: a few dense bodies in interphase nuclei
        nucleoli = np.zeros_like(r)
        if mitosis == 0 and cond < 0.3 and not frags:
            for _ in range(int(rng.integers(2, 4))):
                ang_, s_ = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5)
                cx_ = nx + s_ * a_n * math.cos(ang_)
                cy_ = ny + s_ * b_n * math.sin(ang_)
                sig = max(0.8, 0.13 * a_n)
                nucleoli += np.exp(-((xx - cx_) ** 2 + (yy - cy_) ** 2) / (2 * sig * sig))
        granules = self._patch(self._texture, cell.texture_origin, 2 * h + 1)
        opl = (DN_CYTO * t_cell + 0.005 * granules * (inside > 0)) * fade
        opl_nuc = (DN_NUCLEUS * t_nuc + 0.08 * nucleoli) * fade
        body = d < 1.0
        return {
            "h": h,
            "d": np.where(body, d, np.inf).astype(np.float32),
            "opl": np.where(body, opl, 0).astype(np.float32),
            "opl_nuc": np.where(body, opl_nuc, 0).astype(np.float32),
            "dna": dna,
            "nuc": nuc & body,
            "roundness": roundness,
        }

    @staticmethod
    def _patch(texture: np.ndarray, origin: tuple[int, int], size: int) -> np.ndarray:
        """A cell's own ``size``-square window of a shared texture (moves with the cell)."""
        n = texture.shape[0]
        if size >= n:
            return np.resize(texture, (size, size))
        oy, ox = origin[0] % (n - size), origin[1] % (n - size)
        return texture[oy : oy + size, ox : ox + size]

    @staticmethod
    def _chromosomes(
        xx: np.ndarray, yy: np.ndarray, angle: float, size: float, p: float
    ) -> np.ndarray:
        """Condensed DNA: a metaphase plate, splitting into two sister sets in anaphase."""
        ca, sa = math.cos(angle), math.sin(angle)
        along = xx * ca + yy * sa
        across = -xx * sa + yy * ca
        sep = 0.0 if p < 0.6 else (p - 0.6) / 0.4 * 0.75 * size
        out = np.zeros_like(xx)
        for s in (0.0,) if sep == 0 else (-sep, sep):
            q = (along / (0.55 * size)) ** 2 + ((across - s) / (0.16 * size)) ** 2
            out += np.clip(1 - q, 0, 1) ** 0.5
        return out

    # -- whole frame ----------------------------------------------------------------------------
    def render(self, population: Population, *, reporter_nc: dict[int, float] | None) -> Maps:
        """Draw every cell; ``reporter_nc`` (cell id -> N/C ratio) adds the reporter channel."""
        H, W = self.height, self.width
        best = np.full((H, W), np.inf, np.float32)
        lab = np.zeros((H, W), np.uint32)
        placed = []
        for cell in population.cells:
            t = self.template(cell)
            h = t["h"]
            cx, cy = round(cell.x), round(cell.y)
            y0, y1, x0, x1 = cy - h, cy + h + 1, cx - h, cx + h + 1
            ys, xs = slice(max(0, y0), min(H, y1)), slice(max(0, x0), min(W, x1))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            ts = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            d = t["d"][ts]
            win = d < best[ys, xs]
            best[ys, xs][win] = d[win]
            lab[ys, xs][win] = cell.id
            placed.append((cell, t, ys, xs, ts))
        opl = np.zeros((H, W), np.float32)
        dna = np.zeros((H, W), np.float32)
        nuc_lab = np.zeros((H, W), np.uint32)
        mem_weight = np.zeros(population.next_id, np.float32)
        rep_c = np.zeros(population.next_id, np.float32) if reporter_nc is not None else None
        rep_n = np.zeros(population.next_id, np.float32) if reporter_nc is not None else None
        for cell, t, ys, xs, ts in placed:
            own = lab[ys, xs] == cell.id
            # nuclear dry mass follows DNA content (+45 % from G1 to G2, as QPI measures)
            mass = np.float32(0.55 + 0.45 * cell.dna_content) * self._nucleus_gain
            np.copyto(opl[ys, xs], t["opl"][ts] + t["opl_nuc"][ts] * mass, where=own)
            dna[ys, xs] += np.where(own, t["dna"][ts], 0) * cell.dna_content
            nuc_lab[ys, xs][own & t["nuc"][ts]] = cell.id
            mem_weight[cell.id] = 1.0 + 0.8 * t["roundness"]
            if rep_c is not None and rep_n is not None and reporter_nc is not None:
                rep_c[cell.id] = cell.expression
                rep_n[cell.id] = cell.expression * (reporter_nc[cell.id] - 1.0)
        edge = np.zeros((H, W), bool)
        diff_x = lab[:, 1:] != lab[:, :-1]
        diff_y = lab[1:, :] != lab[:-1, :]
        edge[:, 1:] |= diff_x
        edge[:, :-1] |= diff_x
        edge[1:, :] |= diff_y
        edge[:-1, :] |= diff_y
        edge &= lab > 0
        membrane = mem_weight[lab] * (edge + np.float32(0.12))
        membrane[lab == 0] = 0
        if self._substrate is not None:
            opl += self._substrate
        reporter = None
        if rep_c is not None and rep_n is not None:
            reporter = rep_c[lab] + rep_n[nuc_lab]
            reporter[lab == 0] = 0
        return Maps(opl, dna, membrane, reporter, lab, nuc_lab)
