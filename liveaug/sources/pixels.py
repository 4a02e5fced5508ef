"""Turn a camera buffer into a 2-D brightfield intensity image, one pixel format at a time.

Pure numpy/OpenCV, no camera library: :func:`to_image` takes the bytes a GenTL producer delivered
plus the format's GenICam (PFNC) name and the image size, and returns a fresh ``(H, W)`` array the
caller may keep after the buffer goes back to the producer.

- ``Mono8`` stays ``uint8``; ``Mono10/12/14/16`` are little-endian ``uint16`` with their bit depth
  kept (12-bit data stays 12-bit in a ``uint16``, never rescaled).
- Packed mono: PFNC ``Mono10p``/``Mono12p``/``Mono14p`` (LSB-first bit stream) and the GigE Vision
  ``Mono10Packed``/``Mono12Packed`` (two pixels in three bytes) are unpacked with strided numpy
  views that read each pixel's bytes in place (no temporaries the size of the image).
- ``RGB8``/``BGR8``/``RGBa8``/``BGRa8`` become intensity with OpenCV's luma weights
  (0.299 R + 0.587 G + 0.114 B), the brightfield a grey camera would have seen.
- Bayer ``BayerRG/GR/GB/BG`` 8/10/12/16 and packed ``10p``/``12p`` are demosaiced and turned into
  intensity in one OpenCV call (``COLOR_Bayer…2GRAY``).

Anything else is a :class:`~liveaug.errors.SourceError` naming the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from liveaug.errors import SourceError

Kind = Literal["mono", "packed_p", "packed_gige", "rgb", "bayer"]


@dataclass(frozen=True, slots=True)
class PixelFormat:
    """One supported GenICam pixel format.

    ``bits`` is the size of one stored sample (8 or 16 for unpacked formats, 10/12/14 for packed);
    ``bit_depth`` the significant bits of the image :func:`to_image` returns; ``channels`` the
    interleaved samples per pixel; ``cv_code`` the OpenCV conversion to intensity (colour, Bayer).
    """

    name: str
    code: int
    kind: Kind
    bits: int
    bit_depth: int
    channels: int = 1
    cv_code: int | None = None

    @property
    def dtype(self) -> np.dtype:
        """dtype of the intensity image this format turns into."""
        return np.dtype(np.uint8 if self.bit_depth <= 8 else np.uint16)


def _table() -> dict[str, PixelFormat]:
    formats = [
        PixelFormat("Mono8", 0x01080001, "mono", 8, 8),
        PixelFormat("Mono10", 0x01100003, "mono", 16, 10),
        PixelFormat("Mono12", 0x01100005, "mono", 16, 12),
        PixelFormat("Mono14", 0x01100025, "mono", 16, 14),
        PixelFormat("Mono16", 0x01100007, "mono", 16, 16),
        PixelFormat("Mono10p", 0x010A0046, "packed_p", 10, 10),
        PixelFormat("Mono12p", 0x010C0047, "packed_p", 12, 12),
        PixelFormat("Mono14p", 0x010E0104, "packed_p", 14, 14),
        PixelFormat("Mono10Packed", 0x010C0004, "packed_gige", 10, 10),
        PixelFormat("Mono12Packed", 0x010C0006, "packed_gige", 12, 12),
        PixelFormat("RGB8", 0x02180014, "rgb", 8, 8, 3, cv2.COLOR_RGB2GRAY),
        PixelFormat("BGR8", 0x02180015, "rgb", 8, 8, 3, cv2.COLOR_BGR2GRAY),
        PixelFormat("RGBa8", 0x02200016, "rgb", 8, 8, 4, cv2.COLOR_RGBA2GRAY),
        PixelFormat("BGRa8", 0x02200017, "rgb", 8, 8, 4, cv2.COLOR_BGRA2GRAY),
    ]
    # PFNC codes of the Bayer families, by pattern: 8, 10, 12, 16 (unpacked), 10p, 12p.
    bayer = {
        "GR": (0x01080008, 0x0110000C, 0x01100010, 0x0110002E, 0x010A0056, 0x010C0057),
        "RG": (0x01080009, 0x0110000D, 0x01100011, 0x0110002F, 0x010A0058, 0x010C0059),
        "GB": (0x0108000A, 0x0110000E, 0x01100012, 0x01100030, 0x010A0054, 0x010C0055),
        "BG": (0x0108000B, 0x0110000F, 0x01100013, 0x01100031, 0x010A0052, 0x010C0053),
    }
    # OpenCV's four-letter aliases name the 2x2 tile from the top-left corner, like GenICam.
    cv_codes = {
        "GR": cv2.COLOR_BayerGRBG2GRAY,
        "RG": cv2.COLOR_BayerRGGB2GRAY,
        "GB": cv2.COLOR_BayerGBRG2GRAY,
        "BG": cv2.COLOR_BayerBGGR2GRAY,
    }
    for pattern, codes in bayer.items():
        cv = cv_codes[pattern]
        b8, b10, b12, b16, b10p, b12p = codes
        formats += [
            PixelFormat(f"Bayer{pattern}8", b8, "bayer", 8, 8, cv_code=cv),
            PixelFormat(f"Bayer{pattern}10", b10, "bayer", 16, 10, cv_code=cv),
            PixelFormat(f"Bayer{pattern}12", b12, "bayer", 16, 12, cv_code=cv),
            PixelFormat(f"Bayer{pattern}16", b16, "bayer", 16, 16, cv_code=cv),
            PixelFormat(f"Bayer{pattern}10p", b10p, "bayer", 10, 10, cv_code=cv),
            PixelFormat(f"Bayer{pattern}12p", b12p, "bayer", 12, 12, cv_code=cv),
        ]
    return {f.name: f for f in formats}


#: Every supported format by GenICam name.
FORMATS: dict[str, PixelFormat] = _table()
#: The same formats by PFNC integer code (what a GenTL buffer reports).
BY_CODE: dict[int, PixelFormat] = {f.code: f for f in FORMATS.values()}


def lookup(fmt: str | int | PixelFormat) -> PixelFormat:
    """The table entry for a format name or PFNC code; ``SourceError`` naming it when unknown."""
    if isinstance(fmt, PixelFormat):
        return fmt
    found = BY_CODE.get(fmt) if isinstance(fmt, int) else FORMATS.get(fmt)
    if found is None:
        shown = f"0x{fmt:08X}" if isinstance(fmt, int) else str(fmt)
        raise SourceError(
            f"pixel format {shown} is not supported",
            "set the camera's PixelFormat to one of "
            + ", ".join(n for n, f in FORMATS.items() if f.kind != "bayer")
            + " or a Bayer 8/10/12/16/10p/12p format",
        )
    return found


def bit_depth(fmt: str | int | PixelFormat) -> int:
    """Significant bits per pixel of the image a format turns into."""
    return lookup(fmt).bit_depth


def nbytes(fmt: str | int | PixelFormat, width: int, height: int) -> int:
    """Bytes an unpadded ``width`` x ``height`` image of this format occupies."""
    return _stream_bytes(lookup(fmt), width * height)


def _stream_bytes(f: PixelFormat, count: int) -> int:
    if f.kind == "packed_gige":  # an odd last pixel still needs its pair's first two bytes
        return 3 * (count // 2) + 2 * (count % 2)
    return -(-(count * f.bits * f.channels) // 8)


def to_image(
    data: bytes | bytearray | memoryview | np.ndarray,
    fmt: str | int | PixelFormat,
    width: int,
    height: int,
    *,
    offset: int = 0,
    padding_x: int = 0,
) -> np.ndarray:
    """Convert one delivered buffer into a fresh ``(height, width)`` intensity image.

    Parameters
    ----------
    data : bytes-like
        The buffer as delivered; it may be longer than the image (producers allocate the maximum
        payload). It is only read: the result never shares memory with it.
    fmt : str or int
        GenICam pixel format name (``Mono12p``) or PFNC code.
    width, height : int
        Image size in pixels.
    offset : int
        Byte offset of the image in ``data``.
    padding_x : int
        Extra bytes at the end of each line (GenTL ``BUFFER_INFO_XPADDING``).

    Returns
    -------
    (height, width) ndarray
        ``uint8`` for 8-bit formats, ``uint16`` otherwise (bit depth from :func:`bit_depth`).
    """
    f = lookup(fmt)
    raw = np.frombuffer(data, dtype=np.uint8)
    line = _stream_bytes(f, width)
    stride = line + padding_x
    if padding_x:
        need = offset + stride * (height - 1) + line
    else:  # no padding: one continuous stream (packed formats run on across lines)
        need = offset + _stream_bytes(f, width * height)
    if width <= 0 or height <= 0 or raw.size < need:
        raise SourceError(
            f"{f.name} buffer holds {raw.size - offset} bytes, a {width}x{height} image "
            f"needs {need - offset}",
            "the camera's Width/Height/PixelFormat changed while streaming: restart acquisition",
        )
    raw = raw[offset:need]
    if f.kind in ("mono", "rgb") or (f.kind == "bayer" and f.bits in (8, 16)):
        return _unpacked(raw, f, width, height, stride)
    rows = _packed_rows(raw, f, width, height, line, stride)
    if f.kind == "bayer":
        return cv2.cvtColor(rows, f.cv_code)  # type: ignore[arg-type]
    return rows


def _unpacked(raw: np.ndarray, f: PixelFormat, width: int, height: int, stride: int) -> np.ndarray:
    """Byte-aligned formats: one strided view, then a copy or one OpenCV conversion."""
    dtype = np.dtype("<u2") if f.bits == 16 else np.dtype(np.uint8)
    shape: tuple[int, ...] = (height, width) if f.channels == 1 else (height, width, f.channels)
    strides: tuple[int, ...] = (stride, dtype.itemsize * f.channels)
    if f.channels > 1:
        strides += (dtype.itemsize,)
    view = np.ndarray(shape, dtype=dtype, buffer=raw, strides=strides)
    if f.cv_code is not None:
        return cv2.cvtColor(np.ascontiguousarray(view), f.cv_code)
    return view.astype(np.uint16 if f.bits == 16 else np.uint8, copy=True)


def _packed_rows(
    raw: np.ndarray, f: PixelFormat, width: int, height: int, line: int, stride: int
) -> np.ndarray:
    """Unpack a packed image into ``(height, width) uint16``."""
    unpack = unpack_p if f.kind != "packed_gige" else unpack_gige
    if stride == line or height == 1:
        # A continuous bit stream (PFNC packs across lines when there is no padding).
        return unpack(raw, f.bits, width * height).reshape(height, width)
    if (width * f.bits) % 8 == 0:
        # Byte-aligned lines: drop the padding, then unpack the whole image at once.
        lines = np.lib.stride_tricks.as_strided(raw, (height, line), (stride, 1))
        return unpack(np.ascontiguousarray(lines), f.bits, width * height).reshape(height, width)
    out = np.empty((height, width), np.uint16)
    for y in range(height):
        out[y] = unpack(raw[y * stride : y * stride + line], f.bits, width)
    return out


def _group(bits: int) -> tuple[int, int]:
    """(pixels, bytes) of the smallest byte-aligned group of ``bits``-bit samples."""
    pixels = 8 // np.gcd(bits, 8)
    return int(pixels), int(pixels * bits // 8)


def unpack_p(data: np.ndarray | bytes, bits: int, count: int) -> np.ndarray:
    """Unpack ``count`` PFNC ``p`` samples (LSB-first bit stream, e.g. ``Mono12p``) to ``uint16``.

    Pixel ``i`` occupies bits ``i*bits`` … ``i*bits + bits - 1`` of the little-endian stream. For
    each position ``k`` in a byte-aligned group (2 pixels/3 bytes at 12 bits, 4/5 at 10, 4/7 at
    14) a strided little-endian ``uint16``/``uint32`` view starts at that pixel's first byte; one
    shift and at most one mask write it straight into every ``k``-th output pixel.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    per, size = _group(bits)
    groups = -(-count // per)
    out = np.empty(groups * per, np.uint16)
    reads = []
    for k in range(per):
        start, shift = divmod(k * bits, 8)
        dtype = np.dtype("<u2") if shift + bits <= 16 else np.dtype("<u4")
        reads.append((start, shift, dtype))
    reach = max(start + dtype.itemsize for start, _, dtype in reads)  # bytes a group's reads touch
    safe = max(0, min(groups, (raw.size - reach) // size + 1)) if raw.size >= reach else 0
    _unpack_groups(raw, out[: safe * per], reads, bits, per, size, safe)
    if safe < groups:
        # The last group(s) may be cut short or read past the end: unpack them from a padded copy.
        tail = np.zeros((groups - safe) * size + 8, np.uint8)
        rest = raw[safe * size :]
        tail[: rest.size] = rest
        _unpack_groups(tail, out[safe * per :], reads, bits, per, size, groups - safe)
    return out[:count]


def _unpack_groups(
    raw: np.ndarray,
    out: np.ndarray,
    reads: list[tuple[int, int, np.dtype]],
    bits: int,
    per: int,
    size: int,
    groups: int,
) -> None:
    if groups == 0:
        return
    mask = (1 << bits) - 1
    grid = out.reshape(groups, per)
    for k, (start, shift, dtype) in enumerate(reads):
        view = np.ndarray((groups,), dtype=dtype, buffer=raw, offset=start, strides=(size,))
        dst = grid[:, k]
        if shift + bits == 8 * dtype.itemsize:  # the sample fills the top of the word
            np.right_shift(view, shift, out=dst, casting="unsafe")
        elif shift == 0:
            np.bitwise_and(view, mask, out=dst, casting="unsafe")
        else:
            np.right_shift(view, shift, out=dst, casting="unsafe")
            np.bitwise_and(dst, mask, out=dst)


def unpack_gige(data: np.ndarray | bytes, bits: int, count: int) -> np.ndarray:
    """Unpack GigE Vision ``Mono10Packed``/``Mono12Packed`` (two pixels in three bytes).

    Bytes ``b0 b1 b2`` hold ``p0 = b0 << (bits-8) | low(b1)`` and ``p1 = b2 << (bits-8) |
    low(b1 >> 4)``, where ``low`` keeps ``bits - 8`` bits.
    """
    if bits not in (10, 12):
        raise ValueError(f"GigE packing is defined for 10 and 12 bits, not {bits}")
    raw = np.frombuffer(data, dtype=np.uint8)
    pairs = -(-count // 2)
    if raw.size < 3 * pairs:
        raw = np.concatenate([raw, np.zeros(3 * pairs - raw.size, np.uint8)])
    trip = raw[: 3 * pairs].reshape(pairs, 3)
    low_bits = bits - 8
    low_mask = np.uint8((1 << low_bits) - 1)
    out = np.empty((pairs, 2), np.uint16)
    low = np.empty(pairs, np.uint8)
    np.left_shift(trip[:, 0], np.uint16(low_bits), out=out[:, 0], dtype=np.uint16)
    np.bitwise_and(trip[:, 1], low_mask, out=low)
    np.bitwise_or(out[:, 0], low, out=out[:, 0])
    if bits == 12:
        # b1 | b2 << 8 read as one little-endian word, shifted by 4, is exactly b2 << 4 | b1 >> 4.
        word = np.ndarray((pairs,), dtype="<u2", buffer=trip, offset=1, strides=(3,))
        np.right_shift(word, 4, out=out[:, 1])
    else:
        np.left_shift(trip[:, 2], np.uint16(low_bits), out=out[:, 1], dtype=np.uint16)
        np.right_shift(trip[:, 1], np.uint8(4), out=low)
        np.bitwise_and(low, low_mask, out=low)
        np.bitwise_or(out[:, 1], low, out=out[:, 1])
    return out.reshape(-1)[:count]
