"""The composite visual: brightfield and every map overlay blended in one fragment shader.

Data setters only store the array and mark its texture dirty; textures are uploaded in
``_prepare_draw`` (vispy's own pattern, ``visuals/image.py``), in place with ``glTexSubImage2D``
while the shape and dtype stay the same. uint8/uint16 frames are uploaded as they are (``r8`` /
``r16`` textures, normalised by GL), so 12- and 16-bit data reaches the shader unscaled; contrast
limits are converted to the texture's normalised units instead.

Frames come about three times as often as analyses. What changes only with an analysis (virtual
stains, apoptosis tint, phase-coloured outlines) is therefore coloured and edge-tested on the GPU
once per analysis, by two small render-to-texture passes at model resolution (:class:`Bake`);
each frame's draw then samples the brightfield, the real channels and those two textures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from vispy import gloo
from vispy.gloo import FrameBuffer, Texture2D, VertexBuffer
from vispy.visuals import Visual

from liveaug.viewer.shaders import load_shader

#: Stain slots of the shader: virtual stains at model resolution, real channels at frame size.
STAIN_SLOTS: tuple[str, ...] = ("dapi", "membrane", "chan0", "chan1")
#: Width of the cell-id lookup table (ids wrap into rows).
LUT_WIDTH = 256
#: Entries of the phase-colour texture (index = class in PHASE_CLASSES; spare entries unused).
N_PHASE_COLORS = 8

_FORMATS = {np.dtype(np.uint8): "r8", np.dtype(np.uint16): "r16", np.dtype(np.float32): "r32f"}


def _norm_max(dtype: np.dtype) -> float:
    """What GL divides by when it normalises a texel of this dtype (1 for floats)."""
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


class TextureSlot:
    """One sampler of the program: data set any time, uploaded (in place) at draw time."""

    def __init__(self, uniform: str, interpolation: str = "linear") -> None:
        self.uniform = uniform
        self.interpolation = interpolation
        self.texture: Texture2D | None = None
        self.shape: tuple[int, ...] = ()
        self.dtype = np.dtype(np.float32)
        self.uploads = 0
        self.allocations = 0
        self._pending: np.ndarray | None = None

    @property
    def dirty(self) -> bool:
        """True while data waits for the next draw."""
        return self._pending is not None

    def set(self, data: np.ndarray) -> None:
        """Keep ``data`` for upload at the next draw (a newer call replaces it)."""
        if data.dtype not in _FORMATS:
            data = data.astype(np.float32)
        self._pending = np.ascontiguousarray(data)

    def upload(self, program: object) -> bool:
        """Send pending data to the GPU; a new texture only when the shape or dtype changed."""
        data, self._pending = self._pending, None
        if data is None:
            return False
        fmt = "rgba8" if data.ndim == 3 else _FORMATS[data.dtype]
        if self.texture is None or data.shape != self.shape or data.dtype != self.dtype:
            self.texture = Texture2D(
                data,
                interpolation=self.interpolation,
                internalformat=fmt,
                wrapping="clamp_to_edge",
            )
            self.allocations += 1
            program[self.uniform] = self.texture  # type: ignore[index]
        else:
            self.texture.set_data(data, offset=(0, 0))
        self.shape, self.dtype = data.shape, data.dtype
        self.uploads += 1
        return True


class Bake:
    """A render-to-texture pass, run on the GPU only when its inputs changed (``dirty``)."""

    def __init__(self, frag: str, internalformat: str, interpolation: str) -> None:
        self.frag = frag
        self.internalformat = internalformat
        self.interpolation = interpolation
        self.program: gloo.Program | None = None
        self.defines: frozenset[str] | None = None
        self.texture: Texture2D | None = None
        self.fbo: FrameBuffer | None = None
        self.shape: tuple[int, int] = (0, 0)
        self.dirty = True
        self.runs = 0
        self._quad = VertexBuffer(np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32))

    def run(
        self,
        shape: tuple[int, int],
        defines: frozenset[str],
        uniforms: dict[str, object],
        textures: dict[str, Texture2D | None],
    ) -> bool:
        """Render into the target (``shape`` texels); True when the target was reallocated."""
        if self.program is None or defines != self.defines:
            self.program = gloo.Program(
                load_shader("bake.vert.glsl"), load_shader(self.frag, defines)
            )
            self.program["a_position"] = self._quad
            self.defines = defines
        new_target = self.texture is None or shape != self.shape
        if new_target:
            self.texture = Texture2D(
                shape=(*shape, 4),
                format="rgba",
                internalformat=self.internalformat,
                interpolation=self.interpolation,
                wrapping="clamp_to_edge",
            )
            self.fbo = FrameBuffer(color=self.texture)
            self.shape = shape
        program = self.program
        code = {name for _kind, _type, name in program.variables}
        for name, value in (*uniforms.items(), *textures.items()):
            if name in code and value is not None:
                program[name] = value
        canvas = gloo.get_current_canvas()
        ctx = canvas.context
        h, w = shape
        with self.fbo:  # type: ignore[union-attr]
            ctx.set_viewport(0, 0, w, h)
            ctx.set_state(blend=False, depth_test=False, cull_face=False)
            program.draw("triangle_strip")
        stack = getattr(canvas, "_vp_stack", None)  # SceneCanvas keeps the active viewport
        ctx.set_viewport(*(stack[-1] if stack else (0, 0, *canvas.physical_size)))
        self.dirty = False
        self.runs += 1
        return new_target


@dataclass
class StainStyle:
    """How one stain slot is drawn."""

    on: bool = False
    opacity: float = 1.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    clim: tuple[float, float] = (0.0, 1.0)


class CompositeVisual(Visual):
    """Brightfield (frame pixels 0..W, 0..H) with stains, apoptosis tint and cell outlines."""

    def __init__(self) -> None:
        self._features: frozenset[str] = frozenset()
        self._need_rebind = False
        super().__init__(
            vcode=load_shader("composite.vert.glsl"),
            fcode=load_shader("composite.frag.glsl", self._features),
        )
        self._draw_mode = "triangle_strip"
        self.set_gl_state(None, depth_test=False, cull_face=False, blend=False)
        self.size: tuple[int, int] = (1, 1)  # (height, width) in frame pixels
        self._need_vertex_update = True
        self.image = TextureSlot("u_image", interpolation="nearest")
        self.stains = {s: TextureSlot(f"u_stain{i}") for i, s in enumerate(STAIN_SLOTS)}
        self.apoptosis = TextureSlot("u_apop")
        self.labels = TextureSlot("u_labels", interpolation="nearest")
        self.lut = TextureSlot("u_lut", interpolation="nearest")
        self.phase_colors = TextureSlot("u_phase_colors", interpolation="nearest")
        prog = self.shared_program
        for slot in self._slots():
            slot.set(np.zeros((1, 1), np.float32))
            slot.upload(prog)
        self.lut.set(np.zeros((1, LUT_WIDTH, 4), np.uint8))
        self.lut.upload(prog)
        self._lut_size = (LUT_WIDTH, 1)
        self.phase_colors.set(np.zeros((1, N_PHASE_COLORS, 4), np.uint8))
        self.phase_colors.upload(prog)
        self._image_max = 1.0
        self.clim: tuple[float, float] = (0.0, 1.0)
        self.gamma = 1.0
        self.stain_styles = {s: StainStyle() for s in STAIN_SLOTS}
        self._stain_tc = {s: (1.0, 1.0) for s in STAIN_SLOTS}
        self._apop_tc = (1.0, 1.0)
        self._label_tc = (1.0, 1.0)
        self._label_step = (1.0, 1.0)
        self.apop_style = (False, 0.6, 0.5)
        self.apop_color = (1.0, 0.15, 0.1)
        self.outline_style = (False, 1.0, 0.35)
        self.maps_bake = Bake("bake_maps.frag.glsl", "rgba32f", "linear")
        self.outline_bake = Bake("bake_outlines.frag.glsl", "rgba8", "nearest")
        self._maps_tc = (1.0, 1.0)
        self._update_uniforms()

    def _slots(self) -> list[TextureSlot]:
        return [self.image, *self.stains.values(), self.apoptosis, self.labels]

    # -- data ----------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """The brightfield frame as digitised (uint8/uint16 kept as is, anything else float32)."""
        h, w = image.shape[:2]
        if (h, w) != self.size:
            self.size = (h, w)
            self._need_vertex_update = True
        self.image.set(image)
        self._image_max = _norm_max(self.image._pending.dtype)  # type: ignore[union-attr]
        self._update_uniforms()

    def set_stain(self, slot: str, data: np.ndarray | None, scale: float = 1.0) -> None:
        """A stain map; ``scale`` is its pixels per frame pixel (model or channel resolution)."""
        if data is None:
            return
        self.stains[slot].set(data)
        self._stain_tc[slot] = _tc_scale(self.size, data.shape, scale)
        if slot in ("dapi", "membrane"):
            self.maps_bake.dirty = True
        self._update_uniforms()

    def set_apoptosis(self, prob: np.ndarray, scale: float) -> None:
        """Apoptosis probability at model resolution."""
        self.apoptosis.set(prob.astype(np.float32, copy=False))
        self._apop_tc = _tc_scale(self.size, prob.shape, scale)
        self.maps_bake.dirty = True
        self._update_uniforms()

    def set_labels(self, labels: np.ndarray, scale: float) -> None:
        """Cell labels (uint32 ids) at model resolution; ids are exact below 2**24."""
        self.labels.set(labels.astype(np.float32))
        self._label_tc = _tc_scale(self.size, labels.shape, scale)
        self._label_step = (1.0 / labels.shape[1], 1.0 / labels.shape[0])
        self.outline_bake.dirty = True
        self._update_uniforms()

    def set_cells(
        self,
        ids: np.ndarray,
        phase_index: np.ndarray,
        p_apoptosis: np.ndarray | None = None,
        selected: int | None = None,
    ) -> None:
        """The id → (phase, selected, apoptosis) table the outline test looks up."""
        ids = np.asarray(ids, np.int64)
        top = int(ids.max()) if ids.size else 0
        top = max(top, selected or 0)
        rows = 1 << int(np.ceil(np.log2(max(1, top // LUT_WIDTH + 1))))
        table = np.zeros((rows * LUT_WIDTH, 4), np.uint8)
        table[ids, 0] = np.asarray(phase_index, np.uint8)
        if p_apoptosis is not None:
            table[ids, 2] = np.clip(np.asarray(p_apoptosis) * 255, 0, 255).astype(np.uint8)
        table[ids, 3] = 255
        if selected:
            table[selected, 1] = 255
        self.lut.set(table.reshape(rows, LUT_WIDTH, 4))
        self._lut_size = (LUT_WIDTH, rows)
        self.outline_bake.dirty = True
        self._update_uniforms()

    def set_phase_colors(self, colors: Sequence[tuple[float, float, float]]) -> None:
        """Outline colour per phase class (index = position in PHASE_CLASSES)."""
        table = np.zeros((1, N_PHASE_COLORS, 4), np.uint8)
        for i, c in enumerate(colors[:N_PHASE_COLORS]):
            table[0, i, :3] = np.round(np.clip(c, 0, 1) * 255).astype(np.uint8)
            table[0, i, 3] = 255
        self.phase_colors.set(table)
        self.outline_bake.dirty = True
        self.update()

    # -- styles --------------------------------------------------------------------------------
    def set_contrast(self, clim: tuple[float, float], gamma: float = 1.0) -> None:
        """Base image limits in raw frame units (e.g. 0…4095 for 12-bit) and gamma."""
        self.clim = (float(clim[0]), float(clim[1]))
        self.gamma = float(gamma)
        self._update_uniforms()

    def set_stain_style(self, slot: str, style: StainStyle) -> None:
        """On/off, opacity, colour and limits (in the map's own units) of one stain."""
        self.stain_styles[slot] = style
        if slot in ("dapi", "membrane"):
            self.maps_bake.dirty = True
        self._update_uniforms()

    def set_apoptosis_style(
        self, on: bool, opacity: float, color: tuple[float, float, float], threshold: float = 0.5
    ) -> None:
        """Tint where the apoptosis probability passes ``threshold``."""
        self.apop_style = (on, opacity, threshold)
        self.apop_color = color
        self.maps_bake.dirty = True
        self._update_uniforms()

    def set_outline_style(self, on: bool, opacity: float, fill: float = 0.35) -> None:
        """Cell outlines coloured by phase; ``fill`` is the selected cell's fill opacity."""
        self.outline_style = (on, opacity, fill)
        self.outline_bake.dirty = True
        self._update_uniforms()

    def features(self) -> frozenset[str]:
        """The composite shader's features for the current styles (see composite.frag.glsl)."""
        f = {f"STAIN{i}" for i in (2, 3) if self.stain_styles[STAIN_SLOTS[i]].on}
        if abs(self.gamma - 1.0) > 1e-6:
            f.add("GAMMA")
        if self._map_features():
            f.add("MAPS")
        if self.outline_style[0]:
            f.add("OUTLINES")
        return frozenset(f)

    def _map_features(self) -> frozenset[str]:
        """Features of the stains/apoptosis bake (see bake_maps.frag.glsl)."""
        f = {f"STAIN{i}" for i in (0, 1) if self.stain_styles[STAIN_SLOTS[i]].on}
        if self.apop_style[0]:
            f.add("APOPTOSIS")
        return frozenset(f)

    def _update_uniforms(self) -> None:
        features = self.features()
        if features != self._features:  # relink with only what is on (one compile per toggle)
            self._features = features
            self.shared_program.frag = load_shader("composite.frag.glsl", features)
            self._need_rebind = True
        self._push_uniforms()
        self.update()

    def _push_uniforms(self) -> None:
        p = self.shared_program
        m = self._image_max
        p["u_clim"] = (self.clim[0] / m, self.clim[1] / m)
        p["u_gamma"] = self.gamma
        for i in (2, 3):
            for name, value in self._stain_uniforms(i, self._stain_tc[STAIN_SLOTS[i]]).items():
                p[name] = value
        p["u_maps_tc"] = self._maps_tc
        p["u_apop_color"] = self.apop_color
        p["u_label_tc"] = self._label_tc

    def _stain_uniforms(self, i: int, tc: tuple[float, float]) -> dict[str, object]:
        slot = STAIN_SLOTS[i]
        st = self.stain_styles[slot]
        tex = self.stains[slot]
        sm = _norm_max(tex._pending.dtype if tex._pending is not None else tex.dtype)
        return {
            f"u_stain{i}_style": (float(st.on), st.opacity, 0.0, 0.0),
            f"u_stain{i}_color": st.color,
            f"u_stain{i}_clim": (st.clim[0] / sm, st.clim[1] / sm),
            f"u_stain{i}_tc": tc,
        }

    def _bake_maps(self) -> None:
        """Colour the virtual stains and the apoptosis tint into one texture (map resolution)."""
        defines = self._map_features()
        # the target is the grid of the first map that is on; the others are sampled onto it
        order = [("STAIN0", "dapi"), ("STAIN1", "membrane"), ("APOPTOSIS", "apoptosis")]
        first = next(slot for feat, slot in order if feat in defines)
        target = self.apoptosis if first == "apoptosis" else self.stains[first]
        target_tc = self._apop_tc if first == "apoptosis" else self._stain_tc[first]
        shape = (target.shape[0], target.shape[1])

        def rel(tc: tuple[float, float]) -> tuple[float, float]:
            return (tc[0] / target_tc[0], tc[1] / target_tc[1])

        on, opacity, threshold = self.apop_style
        uniforms: dict[str, object] = {
            "u_apop_style": (float(on), opacity, threshold, 0.0),
            "u_apop_tc": rel(self._apop_tc),
        }
        for i in (0, 1):
            uniforms.update(self._stain_uniforms(i, rel(self._stain_tc[STAIN_SLOTS[i]])))
        textures = {
            "u_stain0": self.stains["dapi"].texture,
            "u_stain1": self.stains["membrane"].texture,
            "u_apop": self.apoptosis.texture,
        }
        if self.maps_bake.run(shape, defines, uniforms, textures):
            self.shared_program["u_maps"] = self.maps_bake.texture
        if target_tc != self._maps_tc:
            self._maps_tc = target_tc
            self.shared_program["u_maps_tc"] = target_tc

    def _bake_outlines(self) -> None:
        """Edge-test the labels and colour the outlines by phase (label resolution)."""
        on, opacity, fill = self.outline_style
        uniforms = {
            "u_label_step": self._label_step,
            "u_lut_size": self._lut_size,
            "u_outline_style": (float(on), opacity, fill, 0.0),
        }
        textures = {
            "u_labels": self.labels.texture,
            "u_lut": self.lut.texture,
            "u_phase_colors": self.phase_colors.texture,
        }
        shape = (self.labels.shape[0], self.labels.shape[1])
        if self.outline_bake.run(shape, frozenset(), uniforms, textures):
            self.shared_program["u_outlines"] = self.outline_bake.texture

    # -- vispy hooks ---------------------------------------------------------------------------
    def _prepare_transforms(self, view: object) -> None:
        view.view_program.vert["transform"] = view.get_transform()  # type: ignore[attr-defined]

    def _prepare_draw(self, view: object) -> bool:
        if self._need_rebind:
            # a relinked program has forgotten its values: build it now, then set them again
            for program in self.shared_program._programs.values():
                program.build_if_needed()
            self._push_uniforms()
            for slot in (*self._slots(), self.lut, self.phase_colors):
                if slot.texture is not None:
                    self.shared_program[slot.uniform] = slot.texture
            for name, bake in (("u_maps", self.maps_bake), ("u_outlines", self.outline_bake)):
                if bake.texture is not None:
                    self.shared_program[name] = bake.texture
            self._need_rebind = False
        if self._need_vertex_update:
            h, w = self.size
            pos = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
            tc = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
            self.shared_program["a_position"] = VertexBuffer(pos)
            self.shared_program["a_texcoord"] = VertexBuffer(tc)
            self._need_vertex_update = False
        prog = self.shared_program
        for slot in (*self._slots(), self.lut, self.phase_colors):
            slot.upload(prog)
        if "MAPS" in self._features and self.maps_bake.dirty:
            self._bake_maps()
        if "OUTLINES" in self._features and self.outline_bake.dirty:
            self._bake_outlines()
        return True

    def _compute_bounds(self, axis: int, view: object) -> tuple[float, float]:
        if axis > 1:
            return (0.0, 0.0)
        return (0.0, float(self.size[1] if axis == 0 else self.size[0]))


def _tc_scale(
    frame_size: tuple[int, int], map_shape: tuple[int, ...], scale: float
) -> tuple[float, float]:
    """Frame texcoord → map texcoord when the map covers ``frame * scale`` pixels (plus padding)."""
    h, w = frame_size
    return (w * scale / map_shape[1], h * scale / map_shape[0])
