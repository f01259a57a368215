"""Small seeded image-caption datasets with real visual differences between families.

The demo and the tests need several datasets that a CLIP model (even a tiny random
one) can tell apart, without downloading anything. Each family draws a different
kind of picture with PIL/numpy (flat shapes, periodic textures, landscape scenes,
glyphs, smooth gradients, noise), and every caption says what was drawn, so
datasets from one family are close to each other and far from the other families.

The output is a Hugging Face imagefolder: `img_00000.png ...` plus `metadata.jsonl`
with `file_name` and `text`, written to a temporary sibling folder and renamed into
place, so an interrupted run never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnc_core.folders import staged_folder, swap_in
from mnc_core.t2i.datasets import METADATA_FILE

log = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 170, 70),
    "teal": (30, 150, 150),
    "blue": (40, 80, 210),
    "purple": (130, 50, 180),
    "pink": (240, 120, 180),
    "brown": (120, 75, 40),
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
}

Drawer = Callable[[np.random.Generator, int], tuple[Image.Image, str]]


def _pick_colours(rng: np.random.Generator, k: int, exclude: tuple[str, ...] = ()) -> list[str]:
    names = [n for n in COLOURS if n not in exclude]
    return [names[i] for i in rng.choice(len(names), size=k, replace=False)]


def _draw_shapes(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """One to three flat geometric shapes on a plain background."""
    background = _pick_colours(rng, 1, exclude=("black", "brown"))[0]
    image = Image.new("RGB", (size, size), COLOURS[background])
    draw = ImageDraw.Draw(image)
    n_shapes = int(rng.integers(1, 4))
    parts = []
    for colour in _pick_colours(rng, n_shapes, exclude=(background,)):
        kind = str(rng.choice(["circle", "square", "triangle"]))
        r = rng.uniform(0.12, 0.3) * size
        cx, cy = rng.uniform(r, size - r, size=2)
        box = (cx - r, cy - r, cx + r, cy + r)
        if kind == "circle":
            draw.ellipse(box, fill=COLOURS[colour])
        elif kind == "square":
            draw.rectangle(box, fill=COLOURS[colour])
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLOURS[colour])
        parts.append(f"a {colour} {kind}")
    return image, f"{' and '.join(parts)} on a {background} background"


def _draw_textures(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """A periodic two-colour pattern: stripes, checkerboard or dots."""
    a, b = _pick_colours(rng, 2)
    kind = str(rng.choice(["striped", "checkerboard", "dotted"]))
    period = int(rng.integers(max(2, size // 16), max(3, size // 4)))
    yy, xx = np.mgrid[0:size, 0:size] + rng.integers(0, period, size=(2, 1, 1))
    if kind == "striped":
        angle = rng.uniform(0, np.pi)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        mask = (proj // period).astype(int) % 2 == 0
    elif kind == "checkerboard":
        mask = ((xx // period) + (yy // period)) % 2 == 0
    else:
        centre = period / 2
        mask = ((xx % period - centre) ** 2 + (yy % period - centre) ** 2) < (period / 3) ** 2
    pixels = np.where(mask[..., None], COLOURS[a], COLOURS[b]).astype(np.uint8)
    return Image.fromarray(pixels, "RGB"), f"a {kind} pattern in {a} and {b}"


def _draw_scenes(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """A landscape: sky gradient, a sun or moon, mountains or hills, ground."""
    time = str(rng.choice(["day", "sunset", "night"]))
    sky_top, sky_bottom = {
        "day": ((70, 130, 230), (170, 210, 250)),
        "sunset": ((90, 50, 140), (250, 150, 60)),
        "night": ((5, 5, 30), (30, 30, 80)),
    }[time]
    t = np.linspace(0, 1, size)[:, None, None]
    sky = (1 - t) * np.array(sky_top) + t * np.array(sky_bottom)
    pixels = np.broadcast_to(sky, (size, size, 3)).astype(np.uint8).copy()
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    r = size * rng.uniform(0.06, 0.12)
    cx, cy = rng.uniform(0.15, 0.85) * size, rng.uniform(0.1, 0.35) * size
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 240, 200) if time == "night" else
                 (255, 220, 60))
    relief = str(rng.choice(["mountains", "hills"]))
    horizon = rng.uniform(0.55, 0.75) * size
    ground = (40, 120, 50) if time != "night" else (15, 40, 20)
    if relief == "mountains":
        xs = np.linspace(0, size, int(rng.integers(3, 6)) * 2 + 1)
        ys = [horizon - (rng.uniform(0.15, 0.35) * size if i % 2 else 0) for i in range(len(xs))]
        draw.polygon([(0, size), *zip(xs, ys, strict=True), (size, size)], fill=(100, 95, 110))
    else:
        for _ in range(3):
            hx, hr = rng.uniform(0, size), rng.uniform(0.3, 0.6) * size
            draw.ellipse((hx - hr, horizon - hr * 0.4, hx + hr, horizon + hr * 0.4), fill=ground)
    draw.rectangle((0, horizon, size, size), fill=ground)
    body = "moon" if time == "night" else "sun"
    return image, f"a landscape with {relief} and a {body} at {time}"


def _draw_glyphs(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """Two to four letters or digits in dark ink on a light page."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    n_chars = int(rng.integers(2, 5))
    text = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=n_chars))
    ink = str(rng.choice(["black", "blue", "red"]))
    image = Image.new("RGB", (size, size), COLOURS["white"])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, int(size * 0.8 / n_chars * 1.6)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (size - (right - left)) / 2 - left + rng.uniform(-0.05, 0.05) * size
    y = (size - (bottom - top)) / 2 - top + rng.uniform(-0.1, 0.1) * size
    draw.text((x, y), text, fill=COLOURS[ink], font=font)
    return image, f"the characters {text} written in {ink} ink on a white page"


def _draw_gradients(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """A smooth linear or radial gradient between two colours."""
    a, b = _pick_colours(rng, 2)
    kind = str(rng.choice(["linear", "radial"]))
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if kind == "linear":
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    else:
        cx, cy = rng.uniform(0.2, 0.8, size=2)
        t = np.clip(np.hypot(xx - cx, yy - cy) / 0.8, 0, 1)
    pixels = (1 - t[..., None]) * np.array(COLOURS[a]) + t[..., None] * np.array(COLOURS[b])
    caption = f"a smooth {kind} gradient from {a} to {b}"
    return Image.fromarray(pixels.astype(np.uint8), "RGB"), caption


def _draw_noise(rng: np.random.Generator, size: int) -> tuple[Image.Image, str]:
    """Random noise: fine per-pixel colour noise or blurred cloudy blobs."""
    kind = str(rng.choice(["fine", "cloudy"]))
    tint = str(rng.choice(["colourful", "grey", "warm", "cool"]))
    noise = rng.uniform(0, 255, size=(size, size, 3))
    if tint == "grey":
        noise[...] = noise[..., :1]
    elif tint == "warm":
        noise *= np.array([1.0, 0.6, 0.3])
    elif tint == "cool":
        noise *= np.array([0.3, 0.6, 1.0])
    image = Image.fromarray(noise.astype(np.uint8), "RGB")
    if kind == "cloudy":
        image = image.filter(ImageFilter.GaussianBlur(radius=size / 16))
    return image, f"{kind} random noise in {tint} tones"


_DRAWERS: dict[str, Drawer] = {
    "shapes": _draw_shapes,
    "textures": _draw_textures,
    "scenes": _draw_scenes,
    "glyphs": _draw_glyphs,
    "gradients": _draw_gradients,
    "noise": _draw_noise,
}
SYNTHETIC_FAMILIES: tuple[str, ...] = tuple(_DRAWERS)


def draw_synthetic_image(
    family: str, rng: np.random.Generator, size: int
) -> tuple[Image.Image, str]:
    """Draw one RGB image of `family` and its caption (for callers that need no files)."""
    if family not in _DRAWERS:
        raise ValueError(f"unknown synthetic family {family!r}; choose one of {SYNTHETIC_FAMILIES}")
    if size < 8:
        raise ValueError(f"synthetic image size must be at least 8 px, got {size}")
    return _DRAWERS[family](rng, size)


def make_synthetic_dataset(
    out_dir: Path,
    family: str,
    n_images: int,
    seed: int,
    size: int = 64,
    *,
    overwrite: bool = False,
) -> Path:
    """Write an imagefolder of `n_images` PNGs of `family` plus `metadata.jsonl`; return `out_dir`.

    Refuses to replace an existing non-empty `out_dir` unless `overwrite=True`: an
    existing folder may hold a real dataset, and stored data is never clobbered silently.
    """
    out_dir = Path(out_dir)
    if family not in _DRAWERS:
        raise ValueError(f"unknown synthetic family {family!r}; choose one of {SYNTHETIC_FAMILIES}")
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out_dir} exists and is not empty; pass overwrite=True to replace it"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with staged_folder(out_dir) as staging:
        rows = []
        for i in range(n_images):
            image, caption = draw_synthetic_image(family, rng, size)
            name = f"img_{i:05d}.png"
            image.save(staging / name)
            rows.append(json.dumps({"file_name": name, "text": caption}))
        (staging / METADATA_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
        swap_in(staging, out_dir)
    log.info("wrote %d %s images (%d px, seed %d) to %s", n_images, family, size, seed, out_dir)
    return out_dir
