"""Render one episode: a PNG contact sheet or an mp4 with the cameras side by side.

The contact sheet has a header (task, length, fps), one row of evenly spaced frames per camera,
and a line plot per low-dimensional feature (state, action, reward, ...) with the sampled
instants marked. Pure Pillow drawing; no plotting library needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from robot_learning.datasets.reader import LeRobotDataset
from robot_learning.datasets.video import VideoEncoder, VideoSettings

log = logging.getLogger(__name__)

THUMB_HEIGHT = 128
PLOT_HEIGHT = 110
MAX_COLUMNS = 8
MAX_PLOTS = 5
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
BACKGROUND, INK, GRID = (255, 255, 255), (20, 20, 20), (215, 215, 215)


def visualize_dataset(root: str | Path, out: str | Path, episode: int = 0) -> Path:
    """Render ``episode`` of the dataset at ``root`` to ``out`` (``.png`` sheet or ``.mp4``)."""
    out = Path(out)
    if out.suffix not in (".png", ".mp4"):
        raise ValueError(f"out={out} must end in .png (contact sheet) or .mp4 (video)")
    ds = LeRobotDataset(root)
    data = ds.episode(episode)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        _contact_sheet(ds, data, episode).save(out)
    else:
        _episode_video(ds, data, out)
    log.info("wrote %s (episode %d of %s)", out, episode, root)
    return out


def _resize(frame: np.ndarray, height: int) -> Image.Image:
    img = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).convert("RGB")
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.BILINEAR)


def _plot_keys(ds: LeRobotDataset) -> list[str]:
    keys = [
        k
        for k, f in ds.features.items()
        if not f.is_image and f.dtype not in ("string",) and len(f.shape) <= 1
    ]
    return keys[:MAX_PLOTS]


def _draw_plot(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    values: np.ndarray,
    title: str,
    marks: list[int],
    cursor: int | None = None,
) -> None:
    """Line plot of ``values`` ``[T, D]`` inside ``box`` (x0, y0, x1, y1)."""
    font = ImageFont.load_default()
    x0, y0, x1, y1 = box
    draw.text((x0 + 4, y0 + 2), title, fill=INK, font=font)
    top, bottom, left, right = y0 + 16, y1 - 4, x0 + 4, x1 - 4
    draw.rectangle((left, top, right, bottom), outline=GRID)
    vals = values.astype(np.float64).reshape(len(values), -1)
    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    draw.text((right - 70, y0 + 2), f"[{lo:.3g}, {hi:.3g}]", fill=(110, 110, 110), font=font)
    steps = max(len(vals) - 1, 1)

    def xy(t: int, v: float) -> tuple[float, float]:
        return left + (right - left) * t / steps, bottom - (bottom - top) * (v - lo) / (hi - lo)

    for t in marks:
        draw.line((xy(t, lo)[0], top, xy(t, lo)[0], bottom), fill=GRID)
    for d in range(min(vals.shape[1], len(PALETTE))):
        points = [xy(t, v) for t, v in enumerate(vals[:, d]) if np.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=PALETTE[d], width=1)
    if cursor is not None:
        cx = xy(cursor, lo)[0]
        draw.line((cx, top, cx, bottom), fill=(220, 0, 0), width=2)


def _contact_sheet(ds: LeRobotDataset, data: dict[str, np.ndarray], episode: int) -> Image.Image:
    length = len(data["index"])
    picks = sorted(
        set(np.linspace(0, length - 1, min(MAX_COLUMNS, length)).round().astype(int).tolist())
    )
    cams, plots = ds.camera_keys, _plot_keys(ds)
    rows = [[_resize(data[k][t], THUMB_HEIGHT) for t in picks] for k in cams]
    label_w, pad, header = 150, 4, 30
    grid_w = max((sum(im.width + pad for im in row) for row in rows), default=0)
    width = max(label_w + grid_w + pad, 640)
    height = header + len(rows) * (THUMB_HEIGHT + 16 + pad) + len(plots) * (PLOT_HEIGHT + pad) + pad
    if not rows and not plots:
        height += 20
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    tasks = ", ".join(dict.fromkeys(data["task"].tolist()))
    draw.text(
        (pad, 4),
        f"{ds.root.name}  episode {episode}  {length} frames @ {ds.fps} fps",
        fill=INK,
        font=font,
    )
    draw.text((pad, 16), f"task: {tasks}", fill=INK, font=font)
    y = header
    for key, row in zip(cams, rows, strict=True):
        draw.text(
            (pad, y + THUMB_HEIGHT // 2),
            key.removeprefix("observation.images."),
            fill=INK,
            font=font,
        )
        x = label_w
        for t, im in zip(picks, row, strict=True):
            sheet.paste(im, (x, y))
            draw.text((x + 2, y + THUMB_HEIGHT + 2), f"t={t}", fill=INK, font=font)
            x += im.width + pad
        y += THUMB_HEIGHT + 16 + pad
    for key in plots:
        _draw_plot(draw, (pad, y, width - pad, y + PLOT_HEIGHT), data[key], key, picks)
        y += PLOT_HEIGHT + pad
    if not rows and not plots:
        draw.text((pad, y), "(no cameras and no numeric features to show)", fill=INK, font=font)
    return sheet


def _even(img: Image.Image) -> np.ndarray:
    """Pad to even width/height so the mp4 is plain yuv420p (playable everywhere)."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    return np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _episode_video(ds: LeRobotDataset, data: dict[str, np.ndarray], out: Path) -> None:
    length = len(data["index"])
    cams, plots = ds.camera_keys, _plot_keys(ds)
    encoder = None
    try:
        for t in range(length):
            if cams:
                tiles = [
                    _resize(data[k][t], max(THUMB_HEIGHT, ds.features[k].shape[0])) for k in cams
                ]
                canvas = Image.new(
                    "RGB", (sum(im.width for im in tiles), tiles[0].height), BACKGROUND
                )
                x = 0
                for im in tiles:
                    canvas.paste(im, (x, 0))
                    x += im.width
            else:
                canvas = Image.new("RGB", (640, max(len(plots), 1) * (PLOT_HEIGHT + 4)), BACKGROUND)
                draw = ImageDraw.Draw(canvas)
                for i, key in enumerate(plots):
                    y = i * (PLOT_HEIGHT + 4)
                    _draw_plot(draw, (0, y, 640, y + PLOT_HEIGHT), data[key], key, [], cursor=t)
            frame = _even(canvas)
            if encoder is None:
                encoder = VideoEncoder(out, ds.fps, frame.shape, VideoSettings(gop=ds.fps * 2))
            encoder.add(frame)
        if encoder is not None:
            encoder.close()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
