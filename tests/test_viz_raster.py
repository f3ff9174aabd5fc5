"""The kept copy's picture (nlu_lite/viz/raster.py): a PNG any decoder reads, each marker where its data puts it
in its trace's colour, grid and background elsewhere, colour scales read, no picture for 3-D; the explorer's
kept copy carries it next to the plotly figure."""
from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("plotly")
import plotly.graph_objects as go
from _viz_support import sentence_frame

from nlu_lite.viz import explore
from nlu_lite.viz.raster import figure_png


def decode(png: bytes) -> np.ndarray:
    """An 8-bit RGB PNG, unfiltered rows (what figure_png writes), read from its chunks by the PNG spec."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {}
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind] = chunks.get(kind, b"") + data
        at += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def pixel(fig: go.Figure, x: float, y: float, xs: np.ndarray, ys: np.ndarray) -> tuple[int, int]:
    """Where (x, y) lands: the plot area (the figure's margins) spans the data's range widened 5% each side."""
    m = fig.layout.margin
    left, right, top, bottom = m.l, fig.layout.width - m.r, m.t, fig.layout.height - m.b
    (x0, x1), (y0, y1) = [(v.min() - 0.05 * np.ptp(v), v.max() + 0.05 * np.ptp(v)) for v in (xs, ys)]
    return (round(bottom - 1 - (y - y0) / (y1 - y0) * (bottom - top - 1)),
            round(left + (x - x0) / (x1 - x0) * (right - left - 1)))


def test_each_marker_is_drawn_where_its_data_puts_it_in_its_colour():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 40)), rng.normal(size=(2, 40)) + 6
    fig = go.Figure([go.Scatter(x=a[0], y=a[1], mode="markers", marker={"color": "#636EFA", "size": 5}),
                     go.Scattergl(x=b[0], y=b[1], mode="markers", marker={"color": "rgb(239, 85, 59)", "size": 5})])
    fig.update_layout(width=500, height=400, margin={"l": 30, "r": 20, "t": 50, "b": 30}, template="plotly_white")
    image = decode(figure_png(fig))
    assert image.shape == (400, 500, 3)
    xs, ys = np.r_[a[0], b[0]], np.r_[a[1], b[1]]
    on_b = {pixel(fig, x, y, xs, ys) for x, y in zip(*b)}
    for x, y in zip(*a):
        at = pixel(fig, x, y, xs, ys)
        if at not in on_b:  # the later trace is drawn on top
            assert tuple(image[at]) == (0x63, 0x6E, 0xFA), at
    for at in on_b:
        assert tuple(image[at]) == (239, 85, 59), at
    assert tuple(image[5, 5]) == (255, 255, 255)  # the margin: the paper's white
    drawn = {tuple(c) for c in image.reshape(-1, 3)}
    assert (235, 240, 248) in drawn  # the grid


def test_opacity_blends_and_a_colour_scale_is_read():
    xs = ys = np.array([0.13, 1.37, 2.71])  # off the grid's round values: the marker blends with the white area
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers",
                               marker={"color": [0.0, 5.0, 10.0], "coloraxis": "coloraxis", "size": 4, "opacity": 0.5}))
    fig.update_layout(width=300, height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, template="plotly_white",
                      coloraxis={"colorscale": [[0, "#000000"], [1, "#ff0000"]]})
    image = decode(figure_png(fig)).astype(int)
    blend = lambda c: tuple(round(255 * 0.5 + v * 0.5) for v in c)
    middle = 255 * (5.0 - 0.0) / 10.0  # the scale runs over the colour values' own range
    for x, colour in zip(xs, [(0, 0, 0), (middle, 0, 0), (255, 0, 0)]):
        assert np.abs(np.array(image[pixel(fig, x, x, xs, ys)]) - blend(colour)).max() <= 1, x


def test_no_picture_for_3d_no_scatter_or_category_axes():
    assert figure_png(go.Figure(go.Scatter3d(x=[1, 2], y=[1, 2], z=[1, 2]))) is None
    assert figure_png(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))) is None
    assert figure_png(go.Figure(go.Scatter(x=["a", "b"], y=[1, 2]))) is None


def test_the_explorers_kept_copy_carries_the_picture_in_2d_only():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    bundle = ex._snapshot_bundle()
    image = decode(base64.b64decode(bundle["image/png"]))
    assert image.shape[0] == ex._height and "application/vnd.plotly.v1+json" in bundle
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert {(0x63, 0x6E, 0xFA), (0xEF, 0x55, 0x3B), (0x00, 0xCC, 0x96)} <= colours  # the three topics' colours
    ex.dimensions.value = 3
    assert "image/png" not in explore(df, dimensions=3, background=False)._snapshot_bundle()
