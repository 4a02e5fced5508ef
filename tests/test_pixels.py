"""Pixel-format conversion against references written here, bit by bit, from the format specs.

The references are deliberately naive (Python integers, one pixel at a time) so they share no code
or trick with the vectorised unpacking in ``liveaug.sources.pixels``.
"""

from __future__ import annotations

import numpy as np
import pytest

from liveaug.errors import SourceError
from liveaug.sources import pixels as px

SIZES = [(1, 1), (3, 1), (37, 23), (64, 8), (5, 7)]


def pack_p(values: list[int], bits: int) -> bytes:
    """PFNC ``p`` packing: pixel i at bits [i*bits, (i+1)*bits) of a little-endian bit stream."""
    stream = 0
    for i, v in enumerate(values):
        stream |= v << (i * bits)
    return stream.to_bytes(-(-len(values) * bits // 8), "little")


def unpack_p_reference(data: bytes, bits: int, count: int) -> list[int]:
    """Read pixel i as bits [i*bits, (i+1)*bits) of the little-endian stream, bit by bit."""
    out = []
    for i in range(count):
        value = 0
        for b in range(bits):
            pos = i * bits + b
            value |= ((data[pos // 8] >> (pos % 8)) & 1) << b
        out.append(value)
    return out


def pack_gige(values: list[int], bits: int) -> bytes:
    """GigE Vision Mono10Packed/Mono12Packed: p0, p1 -> [p0 high] [p1 low | p0 low] [p1 high]."""
    low = bits - 8
    if len(values) % 2:
        values = [*values, 0]
    out = bytearray()
    for p0, p1 in zip(values[0::2], values[1::2], strict=True):
        mask = (1 << low) - 1
        out += bytes([p0 >> low, (p0 & mask) | ((p1 & mask) << 4), p1 >> low])
    return bytes(out)


def unpack_gige_reference(data: bytes, bits: int, count: int) -> list[int]:
    low = bits - 8
    mask = (1 << low) - 1
    out = []
    for i in range(count):
        b0, b1, b2 = data[3 * (i // 2) : 3 * (i // 2) + 3]
        out.append((b0 << low) | (b1 & mask) if i % 2 == 0 else (b2 << low) | ((b1 >> 4) & mask))
    return out


def random_values(rng: np.random.Generator, bits: int, count: int) -> list[int]:
    return [int(v) for v in rng.integers(0, 1 << bits, count)]


@pytest.mark.parametrize(("name", "bits"), [("Mono10p", 10), ("Mono12p", 12), ("Mono14p", 14)])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_pfnc_p_packing_round_trip(name: str, bits: int, width: int, height: int) -> None:
    rng = np.random.default_rng(width * 1000 + height + bits)
    values = random_values(rng, bits, width * height)
    data = pack_p(values, bits)
    image = px.to_image(data, name, width, height)
    assert image.dtype == np.uint16 and image.shape == (height, width)
    assert image.ravel().tolist() == values
    # Producers deliver buffers longer than the image: the same bytes followed by junk.
    long = px.to_image(data + b"\xff" * 64, name, width, height)
    assert np.array_equal(long, image)


@pytest.mark.parametrize(("name", "bits"), [("Mono10p", 10), ("Mono12p", 12), ("Mono14p", 14)])
def test_pfnc_p_unpacks_arbitrary_bytes_like_the_bitwise_reference(name: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    width, height = 61, 9
    data = rng.integers(0, 256, px.nbytes(name, width, height), dtype=np.uint8).tobytes()
    expected = unpack_p_reference(data, bits, width * height)
    assert px.to_image(data, name, width, height).ravel().tolist() == expected


@pytest.mark.parametrize(("name", "bits"), [("Mono10Packed", 10), ("Mono12Packed", 12)])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_gige_packing_round_trip(name: str, bits: int, width: int, height: int) -> None:
    rng = np.random.default_rng(width * 7 + height + bits)
    values = random_values(rng, bits, width * height)
    data = pack_gige(values, bits)
    assert px.to_image(data, name, width, height).ravel().tolist() == values
    noise = rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    expected = unpack_gige_reference(noise, bits, width * height)
    assert px.to_image(noise, name, width, height).ravel().tolist() == expected


def test_twelve_bit_data_stays_twelve_bit() -> None:
    values = [0, 1, 2047, 4095] * 16
    image = px.to_image(pack_p(values, 12), "Mono12p", 8, 8)
    assert image.dtype == np.uint16 and int(image.max()) == 4095
    assert px.bit_depth("Mono12p") == 12
    assert px.bit_depth("Mono12Packed") == 12
    assert px.bit_depth("Mono12") == 12
    assert px.bit_depth("Mono8") == 8
    assert px.bit_depth("BayerRG12p") == 12
    assert px.lookup("Mono16").dtype == np.uint16


def test_unpacked_mono_copies_and_honours_padding() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 1 << 12, (6, 5), dtype=np.uint16)
    padded = np.zeros((6, 5 * 2 + 3), np.uint8)
    padded[:, :10] = image.astype("<u2").view(np.uint8).reshape(6, 10)
    data = padded.tobytes()
    out = px.to_image(data, "Mono12", 5, 6, padding_x=3)
    assert np.array_equal(out, image)
    assert out.flags.writeable and out.flags.c_contiguous
    source = np.frombuffer(data, np.uint8)
    assert not np.shares_memory(out, source)
    mono8 = np.arange(20, dtype=np.uint8).reshape(4, 5)
    framed = b"\x00" * 16 + mono8.tobytes()
    assert np.array_equal(px.to_image(framed, "Mono8", 5, 4, offset=16), mono8)


def test_packed_with_line_padding() -> None:
    rng = np.random.default_rng(2)
    width, height, pad = 8, 5, 4  # 8 x 12 bits = 12 bytes a line, byte aligned
    rows = [random_values(rng, 12, width) for _ in range(height)]
    data = b"".join(pack_p(r, 12) + b"\xaa" * pad for r in rows)
    out = px.to_image(data, "Mono12p", width, height, padding_x=pad)
    assert out.tolist() == rows
    odd_width = 5  # 5 x 10 bits = 6.25 bytes: each line starts on a fresh byte
    rows = [random_values(rng, 10, odd_width) for _ in range(height)]
    data = b"".join(pack_p(r, 10) + b"\x55" * pad for r in rows)
    assert px.to_image(data, "Mono10p", odd_width, height, padding_x=pad).tolist() == rows


def luma(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.299 * r.astype(float) + 0.587 * g.astype(float) + 0.114 * b.astype(float)


@pytest.mark.parametrize("name", ["RGB8", "BGR8", "RGBa8", "BGRa8"])
def test_colour_becomes_intensity(name: str) -> None:
    rng = np.random.default_rng(3)
    height, width = 9, 11
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    order = {"RGB8": [0, 1, 2], "BGR8": [2, 1, 0], "RGBa8": [0, 1, 2], "BGRa8": [2, 1, 0]}[name]
    planes = [rgb[..., i] for i in order]
    if name.endswith("a8"):
        planes.append(rng.integers(0, 256, (height, width), dtype=np.uint8))
    data = np.stack(planes, axis=-1).tobytes()
    out = px.to_image(data, name, width, height)
    assert out.dtype == np.uint8 and out.shape == (height, width)
    expected = luma(rgb[..., 0], rgb[..., 1], rgb[..., 2])
    assert np.abs(out.astype(float) - expected).max() <= 1.0


def mosaic(r: int, g: int, b: int, pattern: str, height: int, width: int) -> np.ndarray:
    """A uniformly coloured scene seen through a Bayer filter whose top-left 2x2 tile is
    ``pattern`` read row by row (``RG`` = R G / G B, as GenICam names it)."""
    tile = {"RG": "RGGB", "GR": "GRBG", "GB": "GBRG", "BG": "BGGR"}[pattern]
    value = {"R": r, "G": g, "B": b}
    out = np.empty((height, width), np.int64)
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = value[tile[2 * dy + dx]]
    return out


@pytest.mark.parametrize("pattern", ["RG", "GR", "GB", "BG"])
@pytest.mark.parametrize("depth", ["8", "12", "16", "10p", "12p"])
def test_bayer_is_demosaiced_to_intensity(pattern: str, depth: str) -> None:
    bits = int(depth.rstrip("p"))
    top = (1 << bits) - 1
    # R, G, B far apart so a swapped or shifted pattern lands on a clearly different grey.
    r, g, b = int(top * 0.9), int(top * 0.2), int(top * 0.05)
    height, width = 12, 16
    raw = mosaic(r, g, b, pattern, height, width)
    name = f"Bayer{pattern}{depth}"
    if depth.endswith("p"):
        data = pack_p(raw.ravel().tolist(), bits)
    elif bits == 8:
        data = raw.astype(np.uint8).tobytes()
    else:
        data = raw.astype("<u2").tobytes()
    out = px.to_image(data, name, width, height)
    assert out.dtype == (np.uint8 if bits == 8 else np.uint16)
    inner = out[2:-2, 2:-2].astype(float)
    expected = luma(np.array(r), np.array(g), np.array(b))
    assert np.abs(inner - expected).max() <= max(1.0, top * 0.002), (name, inner.mean(), expected)
    swapped = luma(np.array(b), np.array(g), np.array(r))
    assert abs(float(expected) - float(swapped)) > 10 * max(1.0, top * 0.002)


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="YUV422_8") as err:
        px.to_image(b"\x00" * 64, "YUV422_8", 4, 4)
    assert "PixelFormat" in str(err.value)
    with pytest.raises(SourceError, match="0x02100032"):
        px.lookup(0x02100032)


def test_short_buffer_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="Mono12p buffer holds 10 bytes"):
        px.to_image(b"\x00" * 10, "Mono12p", 4, 4)


def test_codes_and_names_agree() -> None:
    assert len(px.BY_CODE) == len(px.FORMATS)
    for name, fmt in px.FORMATS.items():
        assert px.lookup(fmt.code) is fmt and px.lookup(name) is fmt
    assert px.lookup(0x01080001).name == "Mono8"
    assert px.lookup(0x010C0047).name == "Mono12p"
