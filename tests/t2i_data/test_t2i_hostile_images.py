"""Hostile image folders: a row the file system refuses is skipped (not a crash), every
pixel mode is converted with its real range or refused with the reason, EXIF-rotated
photos get the crop geometry of the upright image, and a BOM in metadata.jsonl is
ignored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnc_core.t2i.datasets import METADATA_FILE, open_rgb, validate_imagefolder
from mnc_core.t2i.training_cache import _crop_geometry


def _append(root: Path, *rows: dict) -> None:
    with (root / METADATA_FILE).open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def test_a_300_character_file_name_skips_that_row_only(small_dataset: Path) -> None:
    before, _ = validate_imagefolder(small_dataset)
    long_name = "x" * 300 + ".png"
    _append(small_dataset, {"file_name": long_name, "text": "too long"})
    pairs, report = validate_imagefolder(small_dataset)
    assert len(pairs) == len(before)
    assert any(issue.file == long_name and "cannot be read" in issue.reason
               for issue in report.skipped)


def _gradient(high: float, dtype) -> np.ndarray:
    return (np.linspace(0, high, 64 * 64).reshape(64, 64)).astype(dtype)


@pytest.mark.parametrize(
    ("name", "pixels", "mode"),
    [
        ("deep.png", _gradient(65535, np.uint16), "I;16"),
        ("float.tiff", _gradient(1.0, np.float32), "F"),
        ("wide.tiff", _gradient(4e6, np.int32), "I"),
    ],
)
def test_high_bit_images_keep_their_range(tmp_path: Path, name: str, pixels, mode: str) -> None:
    path = tmp_path / name
    image = Image.fromarray(pixels)
    assert image.mode == mode
    image.save(path)
    grey = np.asarray(open_rgb(path))[..., 0].astype(float)
    expected = np.linspace(0, 255, 64 * 64).reshape(64, 64)
    assert np.abs(grey - expected).max() <= 1.5, "the gradient survives, not clipped"
    assert 0.4 < (grey > 127).mean() < 0.6


def test_float_image_with_nan_pixels_is_refused_with_the_reason(small_dataset: Path) -> None:
    pixels = _gradient(1.0, np.float32)
    pixels[3, 3] = np.nan
    Image.fromarray(pixels).save(small_dataset / "nan.tiff")
    _append(small_dataset, {"file_name": "nan.tiff", "text": "broken float"})
    _, report = validate_imagefolder(small_dataset)
    assert any(i.file == "nan.tiff" and "NaN or infinite pixels" in i.reason
               for i in report.skipped)


def test_crop_geometry_is_that_of_the_upright_image(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90 degrees: portrait
    Image.new("RGB", (80, 40), (0, 128, 255)).save(tmp_path / "photo.jpg", exif=exif)
    upright = open_rgb(tmp_path / "photo.jpg")
    assert upright.size == (40, 80)
    original_hw, crop_top_left = _crop_geometry(upright.size, 32)
    assert original_hw == [80, 40]  # height 80, width 40: the trained image
    assert crop_top_left == [16, 0]  # resized to 32 x 64 (w x h): the crop cuts rows


def test_a_bom_in_metadata_jsonl_keeps_the_first_pair(small_dataset: Path) -> None:
    before, _ = validate_imagefolder(small_dataset)
    meta = small_dataset / METADATA_FILE
    meta.write_bytes(b"\xef\xbb\xbf" + meta.read_bytes())
    pairs, report = validate_imagefolder(small_dataset)
    assert [p.path for p in pairs] == [p.path for p in before]
    assert report.skipped == []
