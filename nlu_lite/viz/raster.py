"""A PNG picture of a 2-D scatter figure's markers, drawn with numpy: the picture in the explorer's kept copy.

JupyterLab's plotly renderer (jupyterlab-plotly) shows a plotly output's ``image/png`` when the output has one and
draws the interactive figure only when the pointer enters it. So a kept copy that carries this picture is not drawn
while the live explorer hides it (drawing its 5,000 WebGL points held the page about 0.3 s before the live plot of
100,000 points could start, one run each; the renderer's own script still loads), a reopened notebook shows the
picture at once and the interactive plot on hover, and viewers without plotly's renderer (GitHub, nbviewer,
nbconvert's HTML) show the picture where they showed nothing.

What is drawn: the plot area's background, grid lines at round values (zero darker), and every marker of the
figure's scatter traces as a disc of its size, colour and opacity, in the traces' order (later on top), over the
axes' data range with a margin. No text (the title, axes and legend come with the interactive figure), no symbols
but discs. Plotly's colours ``#rrggbb``, ``rgb()``/``rgba()`` and a marker colour array on the figure's colour
axis are read; a colour it cannot read is drawn grey. 3-D figures get no picture (None).
"""
from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

WIDTH = 900  # the picture's width in pixels when the figure sets none (the explorer's plot fills the output)
GREY = (128, 128, 128)
GRID_LINE, ZERO_LINE = (235, 240, 248), (200, 206, 214)  # plotly_white's grid (#EBF0F8) and a darker zero line


def figure_png(fig: Any) -> bytes | None:
    """The PNG of ``fig``'s 2-D scatter markers (see the module's docstring), or None for a figure with 3-D or
    no scatter traces, or coordinates that are not numbers."""
    traces = [t for t in fig.data if t.type in ("scatter", "scattergl") and t.x is not None and len(t.x)]
    if not traces or any(t.type == "scatter3d" for t in fig.data):
        return None
    layout = fig.layout
    width, height = int(layout.width or WIDTH), int(layout.height or 450)
    margin = layout.margin
    left, right = _px(margin.l, 80), width - _px(margin.r, 80)
    top, bottom = _px(margin.t, 100), height - _px(margin.b, 80)
    if right - left < 10 or bottom - top < 10:
        return None
    try:
        xs = [np.asarray(t.x, dtype=np.float64) for t in traces]
        ys = [np.asarray(t.y, dtype=np.float64) for t in traces]
    except (TypeError, ValueError):  # category or date axes: no picture (the figure itself is kept)
        return None
    (x0, x1), (y0, y1) = _span(np.concatenate(xs)), _span(np.concatenate(ys))
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = _rgb(layout.template.layout.paper_bgcolor if layout.template else None, (255, 255, 255))
    image[top:bottom, left:right] = _rgb(layout.plot_bgcolor or (layout.template.layout.plot_bgcolor
                                                                 if layout.template else None), (255, 255, 255))
    _grid(image, (x0, x1), (y0, y1), (left, top, right, bottom))
    for trace, x, y in zip(traces, xs, ys):
        keep = np.isfinite(x) & np.isfinite(y)
        px = np.rint(left + (x[keep] - x0) / (x1 - x0) * (right - left - 1)).astype(np.int64)
        py = np.rint(bottom - 1 - (y[keep] - y0) / (y1 - y0) * (bottom - top - 1)).astype(np.int64)
        colours = _marker_colours(fig, trace, len(x))[keep]
        alpha = float(trace.marker.opacity if trace.marker.opacity is not None else 1.0)
        alpha *= float(trace.opacity if trace.opacity is not None else 1.0)
        size = trace.marker.size
        radius = max(1.0, float(np.median(size) if np.ndim(size) else (size or 6)) / 2)
        _stamp(image, px, py, colours, alpha, radius, (left, top, right, bottom))
    return _png(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def _grid(image: np.ndarray, xspan: tuple[float, float], yspan: tuple[float, float],
          box: tuple[int, int, int, int]) -> None:
    """plotly_white's grid: light lines at round values of each axis (about five), darker zero lines."""
    left, top, right, bottom = box
    for (lo, hi), vertical in ((xspan, True), (yspan, False)):
        for value in _ticks(lo, hi):
            at = (value - lo) / (hi - lo)
            colour = ZERO_LINE if abs(value) < 1e-12 * max(abs(lo), abs(hi), 1.0) else GRID_LINE
            if vertical:
                image[top:bottom, round(left + at * (right - left - 1))] = colour
            else:
                image[round(bottom - 1 - at * (bottom - top - 1)), left:right] = colour


def _ticks(lo: float, hi: float, target: int = 5) -> np.ndarray:
    """Round values (1, 2 or 5 times a power of ten apart) inside [lo, hi], about ``target`` of them."""
    raw = (hi - lo) / target
    power = 10.0 ** np.floor(np.log10(raw))
    step = power * min((1, 2, 5, 10), key=lambda m: abs(m * power - raw))
    return np.arange(np.ceil(lo / step), np.floor(hi / step) + 1) * step


def _px(value: Any, default: int) -> int:
    return int(value) if value is not None else default


def _span(values: np.ndarray) -> tuple[float, float]:
    """The axis range drawn: the data's, widened 5% each side (a single value: ±1)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return -1.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    pad = (hi - lo) * 0.05 if hi > lo else 1.0
    return lo - pad, hi + pad


def _rgb(colour: Any, default: tuple[int, int, int] = GREY) -> tuple[int, int, int]:
    """``#rrggbb``, ``#rgb``, ``rgb(r, g, b)`` or ``rgba(r, g, b, a)`` as a triple; ``default`` otherwise."""
    if not isinstance(colour, str):
        return default
    text = colour.strip().lower()
    try:
        if text.startswith("#") and len(text) in (4, 7):
            digits = text[1:] if len(text) == 7 else "".join(c * 2 for c in text[1:])
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
        if text.startswith(("rgb(", "rgba(")) and text.endswith(")"):
            parts = [float(p) for p in text[text.index("(") + 1:-1].split(",")[:3]]
            return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return default
    return default


def _marker_colours(fig: Any, trace: Any, n: int) -> np.ndarray:
    """An ``(n, 3)`` array of each marker's colour: one colour, a list of colours, or numbers on the colour
    axis's scale (its range: the numbers' own)."""
    colour = trace.marker.color
    if colour is None or isinstance(colour, str):
        return np.tile(np.array(_rgb(colour), dtype=np.float32), (n, 1))
    values = np.asarray(colour)
    if values.dtype.kind in "fiu":
        scale = None
        if trace.marker.coloraxis and fig.layout.coloraxis:
            scale = fig.layout.coloraxis.colorscale
        scale = scale or trace.marker.colorscale
        return _on_scale(values.astype(np.float64), scale)
    return np.array([_rgb(c) for c in values], dtype=np.float32)


def _on_scale(values: np.ndarray, scale: Any) -> np.ndarray:
    """Numbers as colours on a plotly colour scale (``[[position, colour], ...]``), linear between its stops."""
    stops = [(float(p), _rgb(c)) for p, c in (scale or ())] or [(0.0, (68, 1, 84)), (1.0, (253, 231, 37))]
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    t = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(values)
    t = np.where(np.isfinite(t), t, 0.0)
    positions = np.array([p for p, _ in stops])
    colours = np.array([c for _, c in stops], dtype=np.float64)
    return np.stack([np.interp(t, positions, colours[:, i]) for i in range(3)], axis=1).astype(np.float32)


def _stamp(image: np.ndarray, px: np.ndarray, py: np.ndarray, colours: np.ndarray, alpha: float, radius: float,
           box: tuple[int, int, int, int]) -> None:
    """Blend a disc of ``radius`` at each (px, py) into ``image`` (clipped to ``box``); within one trace a pixel
    takes the last marker's colour, as overlapping markers of one plotly trace show."""
    left, top, right, bottom = box
    reach = int(np.ceil(radius))
    offsets = [(dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
               if dx * dx + dy * dy <= radius * radius + 0.25]
    ys = np.concatenate([py + dy for dx, dy in offsets])
    xs = np.concatenate([px + dx for dx, dy in offsets])
    rgb = np.concatenate([colours] * len(offsets))
    inside = (xs >= left) & (xs < right) & (ys >= top) & (ys < bottom)
    ys, xs, rgb = ys[inside], xs[inside], rgb[inside]
    flat = ys * image.shape[1] + xs
    _, last = np.unique(flat[::-1], return_index=True)  # the last marker drawn at each pixel
    last = len(flat) - 1 - last
    pixels = image.reshape(-1, 3)
    pixels[flat[last]] = pixels[flat[last]] * (1 - alpha) + rgb[last] * alpha


def _png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG (no filter, zlib level 6)."""
    height, width, _ = rgb.shape
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))
