"""Decode a PNG screenshot to an RGB array (8-bit RGB/RGBA, not interlaced: what Chromium
writes), so the browser tests can read the pixels of what was drawn."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    out = np.zeros((rows.shape[0], rows.shape[1] - 1), dtype=np.uint8)
    prev = np.zeros(out.shape[1], dtype=np.int32)
    for y, row in enumerate(rows):
        kind, line = row[0], row[1:].astype(np.int32)
        if kind == 2:  # up
            line = (line + prev) & 0xFF
        elif kind in (1, 3, 4):  # sub, average, paeth: depend on the left pixel
            cur = np.zeros_like(line)
            for x in range(len(line)):
                left = cur[x - bpp] if x >= bpp else 0
                up, corner = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 1:
                    guess = left
                elif kind == 3:
                    guess = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    guess = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                cur[x] = (line[x] + guess) & 0xFF
            line = cur
        out[y], prev = line, line
    return out


def decode_png(data: bytes) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    return _unfilter(rows, bpp).reshape(height, width, bpp)[:, :, :3]
