"""Image codecs and pixel operations in pure Python, for the ImageWorker.

Reads PNG (8-bit grey, grey+alpha, RGB or RGBA, not interlaced, any row
filter) and binary PPM (P6, maxval 255); writes PNG. Alpha is dropped. It is
slow next to Pillow, and that is the point of the example: slow, CPU-bound
work belongs in a dirty worker, not in the HTTP worker's event loop. It needs
nothing but the standard library, so the example runs from a fresh clone.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

MAX_SIDE = 4096
MAX_PIXELS = 4096 * 4096
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_PPM_FIELD = re.compile(rb"(?:\s|#[^\n]*\n)*(\d+)")
_INVERT = bytes(range(255, -1, -1))


class ImageError(ValueError):
    """The bytes are not an image this module reads, or an operation's arguments are bad."""


@dataclass(slots=True)
class Image:
    width: int
    height: int
    rgb: bytearray  # width * height RGB triples, row by row

    def mean(self) -> float:
        return sum(self.rgb) / len(self.rgb) if self.rgb else 0.0


def _check_size(width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise ImageError(f"image size {width}x{height} is outside 1..{MAX_SIDE} per side")


# -- codecs ---------------------------------------------------------------------------


def decode(data: bytes) -> Image:
    if data.startswith(PNG_SIGNATURE):
        return _decode_png(data)
    if data.startswith(b"P6"):
        return _decode_ppm(data)
    raise ImageError("not a PNG or binary PPM (P6) image")


def _decode_ppm(data: bytes) -> Image:
    fields, pos = [], 2
    for _ in range(3):
        m = _PPM_FIELD.match(data, pos)
        if m is None:
            raise ImageError("malformed PPM header")
        fields.append(int(m.group(1)))
        pos = m.end()
    width, height, maxval = fields
    if maxval != 255:
        raise ImageError(f"PPM maxval {maxval} is not supported (only 255)")
    _check_size(width, height)
    pos += 1  # the single whitespace byte before the raster
    size = width * height * 3
    if len(data) < pos + size:
        raise ImageError("PPM raster is truncated")
    return Image(width, height, bytearray(data[pos : pos + size]))


def _decode_png(data: bytes) -> Image:
    header, idat, pos = None, [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ImageError("PNG chunk is truncated")
        pos += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ImageError("PNG without IHDR or IDAT")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _PNG_CHANNELS or interlace:
        raise ImageError(
            f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})"
        )
    _check_size(width, height)
    channels = _PNG_CHANNELS[colour]
    stride = width * channels
    expected = height * (stride + 1)
    try:
        # bounded: a small compressed stream cannot inflate past the image's own size
        raw = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise ImageError(f"PNG data does not inflate: {exc}") from None
    if len(raw) != expected:
        raise ImageError("PNG data is shorter than its header says")
    samples = _unfilter(raw, height, stride, channels)
    if channels == 3:
        return Image(width, height, samples)
    rgb = bytearray(width * height * 3)
    for c in range(3):  # grey repeats into R, G and B; alpha is dropped
        rgb[c::3] = samples[(c if channels == 4 else 0) :: channels]
    return Image(width, height, rgb)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytearray:
    """Undo PNG's per-row filters (PNG spec, section 9: None, Sub, Up, Average, Paeth)."""
    out = bytearray(height * stride)
    prev = bytearray(stride)
    pos = 0
    for y in range(height):
        kind = raw[pos]
        line = bytearray(raw[pos + 1 : pos + 1 + stride])
        pos += stride + 1
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif kind != 0:
            raise ImageError(f"PNG row {y} has unknown filter type {kind}")
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return out


def encode_png(img: Image) -> bytes:
    stride = img.width * 3
    raw = b"".join(b"\x00" + img.rgb[y * stride : (y + 1) * stride] for y in range(img.height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", img.width, img.height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


# -- pixel operations -------------------------------------------------------------------


def sample(width: int, height: int, seed: int = 0) -> Image:
    """A test picture: a colour gradient with a bright disc whose place depends on `seed`."""
    _check_size(width, height)
    rgb = bytearray(width * height * 3)
    cx = (seed * 37) % width
    cy = (seed * 53) % height
    r2 = (min(width, height) // 4) ** 2
    o = 0
    for y in range(height):
        g = y * 255 // max(1, height - 1)
        for x in range(width):
            if (x - cx) ** 2 + (y - cy) ** 2 <= r2:
                rgb[o : o + 3] = b"\xff\xf0\xc0"
            else:
                rgb[o] = x * 255 // max(1, width - 1)
                rgb[o + 1] = g
                rgb[o + 2] = (seed * 40) & 0xFF
            o += 3
    return Image(width, height, rgb)


def resize(img: Image, width: int, height: int) -> Image:
    """Bilinear resampling to exactly `width` x `height`."""
    _check_size(width, height)
    src, sw, sh = img.rgb, img.width, img.height
    xs = []
    for x in range(width):
        fx = min(max((x + 0.5) * sw / width - 0.5, 0.0), sw - 1)
        x0 = int(fx)
        xs.append((x0 * 3, min(x0 + 1, sw - 1) * 3, fx - x0))
    out = bytearray(width * height * 3)
    o = 0
    for y in range(height):
        fy = min(max((y + 0.5) * sh / height - 0.5, 0.0), sh - 1)
        y0 = int(fy)
        wy = fy - y0
        top_row, bottom_row = y0 * sw * 3, min(y0 + 1, sh - 1) * sw * 3
        for x0, x1, wx in xs:
            a, b, c, d = top_row + x0, top_row + x1, bottom_row + x0, bottom_row + x1
            for k in range(3):
                top = src[a + k] + (src[b + k] - src[a + k]) * wx
                bottom = src[c + k] + (src[d + k] - src[c + k]) * wx
                out[o] = int(top + (bottom - top) * wy + 0.5)
                o += 1
    return Image(width, height, out)


def thumbnail(img: Image, side: int) -> Image:
    """Shrink so that the longer side is at most `side`, keeping the aspect ratio."""
    scale = side / max(img.width, img.height)
    if scale >= 1:
        return img
    return resize(img, max(1, round(img.width * scale)), max(1, round(img.height * scale)))


def grayscale(img: Image) -> Image:
    """ITU-R BT.601 luma into all three channels."""
    luma = bytes(
        (299 * r + 587 * g + 114 * b) // 1000
        for r, g, b in zip(img.rgb[0::3], img.rgb[1::3], img.rgb[2::3], strict=True)
    )
    out = bytearray(len(img.rgb))
    out[0::3] = out[1::3] = out[2::3] = luma
    return Image(img.width, img.height, out)


def invert(img: Image) -> Image:
    return Image(img.width, img.height, img.rgb.translate(_INVERT))


def mirror(img: Image) -> Image:
    """Flip left to right."""
    stride = img.width * 3
    out = bytearray(len(img.rgb))
    for y in range(img.height):
        row = img.rgb[y * stride : (y + 1) * stride]
        for k in range(3):
            out[y * stride + k : (y + 1) * stride : 3] = row[k::3][::-1]
    return Image(img.width, img.height, out)


def blur(img: Image) -> Image:
    """A 3x3 box blur, as two separable passes, edges clamped."""
    w, h = img.width, img.height

    def blur_lines(src: bytearray, count: int, length: int, step: int, line_step: int):
        out = bytearray(len(src))
        for line in range(count):
            for k in range(3):
                base = line * line_step + k
                values = src[base : base + length * step : step]
                padded = [values[0], *values, values[-1]]
                out[base : base + length * step : step] = bytes(
                    (padded[i] + padded[i + 1] + padded[i + 2] + 1) // 3 for i in range(length)
                )
        return out

    rows = blur_lines(img.rgb, h, w, 3, w * 3)  # along each row
    return Image(w, h, blur_lines(rows, w, h, w * 3, 3))  # along each column


OPERATIONS = {"grayscale": grayscale, "invert": invert, "mirror": mirror, "blur": blur}


def apply(img: Image, operation: str) -> Image:
    """One named operation: those in OPERATIONS, or ``thumbnail:SIDE``."""
    name, _, arg = operation.partition(":")
    if name == "thumbnail":
        if not arg.isdigit() or not 0 < int(arg) <= MAX_SIDE:
            raise ImageError(f"thumbnail needs a side in pixels, as in 'thumbnail:64', not {arg!r}")
        return thumbnail(img, int(arg))
    fn = OPERATIONS.get(operation)
    if fn is None:
        known = ", ".join([*OPERATIONS, "thumbnail:SIDE"])
        raise ImageError(f"unknown image operation {operation!r} (known: {known})")
    return fn(img)
