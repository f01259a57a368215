"""Imagefolder validation, split and preprocessing: every error path, nothing touched on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnc_core.t2i.datasets import (
    METADATA_FILE,
    DatasetError,
    ImageCaptionPair,
    load_imagefolder,
    preprocess_image,
    split,
    validate_imagefolder,
)


def _append_rows(root: Path, *lines: str) -> None:
    with (root / METADATA_FILE).open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")


def _row(file_name: str, text: str = "a picture") -> str:
    return json.dumps({"file_name": file_name, "text": text})


def _n_lines(root: Path) -> int:
    return len((root / METADATA_FILE).read_text().splitlines())


def _skipped(report, file_name: str) -> list[str]:
    return [issue.reason for issue in report.skipped if issue.file == file_name]


def _save_noise(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)


def test_clean_dataset_is_fully_valid(small_dataset: Path) -> None:
    ds = load_imagefolder(small_dataset)
    assert ds.report.skipped == [] and ds.report.converted == []
    assert len(ds.train) + len(ds.val) == 12
    captions = {json.loads(line)["file_name"]: json.loads(line)["text"]
                for line in (small_dataset / METADATA_FILE).read_text().splitlines()}
    for pair in ds.pairs:
        assert pair.caption == captions[pair.path.name]
        assert pair.path.is_file()


def test_corrupt_image_is_skipped(small_dataset: Path) -> None:
    (small_dataset / "corrupt.png").write_bytes(b"this is not a png")
    _append_rows(small_dataset, _row("corrupt.png"))
    pairs, report = validate_imagefolder(small_dataset)
    assert "corrupt.png" not in {p.path.name for p in pairs}
    [reason] = _skipped(report, "corrupt.png")
    assert "unreadable" in reason


def test_truncated_image_is_skipped(small_dataset: Path) -> None:
    _save_noise(small_dataset / "whole.png", (40, 40))
    data = (small_dataset / "whole.png").read_bytes()
    (small_dataset / "whole.png").unlink()
    (small_dataset / "cut.png").write_bytes(data[: len(data) // 2])
    _append_rows(small_dataset, _row("cut.png"))
    pairs, report = validate_imagefolder(small_dataset)
    assert "cut.png" not in {p.path.name for p in pairs}
    [reason] = _skipped(report, "cut.png")
    assert "truncated" in reason


def test_image_without_row_and_row_with_empty_text_are_missing_captions(
    small_dataset: Path,
) -> None:
    _save_noise(small_dataset / "orphan.png", (40, 40), seed=1)
    _save_noise(small_dataset / "blank.png", (40, 40), seed=2)
    _append_rows(small_dataset, _row("blank.png", "   "))
    pairs, report = validate_imagefolder(small_dataset)
    names = {p.path.name for p in pairs}
    assert "orphan.png" not in names and "blank.png" not in names
    assert "no row" in _skipped(report, "orphan.png")[0]
    assert "empty text" in _skipped(report, "blank.png")[0]
    assert len(pairs) == 12


def test_bad_jsonl_lines_are_reported_with_line_numbers(small_dataset: Path) -> None:
    n = _n_lines(small_dataset)
    _append_rows(
        small_dataset,
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"text": "no file name"}),
        json.dumps({"file_name": "../outside.png", "text": "escapes the folder"}),
        json.dumps({"file_name": "img_00000.png", "text": 5}),
    )
    pairs, report = validate_imagefolder(small_dataset)
    by_line = {issue.line: issue.reason for issue in report.skipped}
    assert "not valid JSON" in by_line[n + 1]
    assert "not a JSON object" in by_line[n + 2]
    assert "no file_name" in by_line[n + 3]
    assert "inside the dataset folder" in by_line[n + 4]
    assert "text is not a string" in by_line[n + 5]
    assert f"{METADATA_FILE} line {n + 1}" in str(report.skipped[0])
    assert len(pairs) == 12


def test_invalid_utf8_line_is_skipped_not_altered(small_dataset: Path) -> None:
    meta = small_dataset / METADATA_FILE
    lines = meta.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"text": "', b'"text": "\xff', 1)
    meta.write_bytes(b"".join(lines))
    before = meta.read_bytes()
    pairs, report = validate_imagefolder(small_dataset)
    by_line = {issue.line: issue.reason for issue in report.skipped}
    assert "not valid UTF-8" in by_line[1]
    assert not any("\ufffd" in p.caption for p in pairs)  # no silently replaced byte
    assert len(pairs) == 11
    assert meta.read_bytes() == before


def test_non_image_name_and_link_out_of_the_folder_are_skipped(
    small_dataset: Path, tmp_path: Path
) -> None:
    shutil.copyfile(small_dataset / "img_00001.png", small_dataset / "picture.dat")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(outside / "red.png")
    (small_dataset / "linked").symlink_to(outside, target_is_directory=True)
    _append_rows(small_dataset, _row("picture.dat"), _row("linked/red.png"))
    pairs, report = validate_imagefolder(small_dataset)
    assert "not an image file name" in _skipped(report, "picture.dat")[0]
    assert "outside the dataset folder" in _skipped(report, "linked/red.png")[0]
    assert {p.path.name for p in pairs}.isdisjoint({"picture.dat", "red.png"})
    assert (outside / "red.png").is_file()


def test_row_pointing_to_missing_file(small_dataset: Path) -> None:
    _append_rows(small_dataset, _row("gone.png"))
    pairs, report = validate_imagefolder(small_dataset)
    [issue] = [i for i in report.skipped if i.file == "gone.png"]
    assert "missing file" in issue.reason and issue.line == _n_lines(small_dataset)
    assert len(pairs) == 12


def test_duplicates_same_bytes_and_same_file_twice(small_dataset: Path) -> None:
    shutil.copyfile(small_dataset / "img_00003.png", small_dataset / "copy.png")
    _append_rows(small_dataset, _row("copy.png"), _row("img_00004.png", "listed twice"))
    pairs, report = validate_imagefolder(small_dataset)
    names = [p.path.name for p in pairs]
    assert "copy.png" not in names and names.count("img_00004.png") == 1
    assert "same image bytes as img_00003.png" in _skipped(report, "copy.png")[0]
    assert "listed again" in _skipped(report, "img_00004.png")[0]
    kept = next(p for p in pairs if p.path.name == "img_00004.png")
    assert kept.caption != "listed twice"


def test_tiny_images_are_skipped(small_dataset: Path) -> None:
    _save_noise(small_dataset / "small.png", (8, 50))
    _append_rows(small_dataset, _row("small.png"))
    pairs, report = validate_imagefolder(small_dataset, min_side=16)
    assert "small.png" not in {p.path.name for p in pairs}
    assert "tiny image 8x50" in _skipped(report, "small.png")[0]
    pairs, _ = validate_imagefolder(small_dataset, min_side=8)
    assert "small.png" in {p.path.name for p in pairs}


@pytest.mark.parametrize(("mode", "suffix"), [("CMYK", ".jpg"), ("L", ".png"), ("RGBA", ".png")])
def test_non_rgb_images_are_kept_and_reported_as_converted(
    small_dataset: Path, mode: str, suffix: str
) -> None:
    name = f"odd{suffix}"
    _save_noise(small_dataset / name, (48, 40), mode=mode)
    _append_rows(small_dataset, _row(name))
    pairs, report = validate_imagefolder(small_dataset)
    assert name in {p.path.name for p in pairs}
    [issue] = report.converted
    assert issue.file == name and mode in issue.reason
    tensor = preprocess_image(small_dataset / name, resolution=32)
    assert tensor.shape == (3, 32, 32)


def test_validation_never_deletes_or_modifies_files(small_dataset: Path, snapshot) -> None:
    (small_dataset / "corrupt.png").write_bytes(b"garbage")
    shutil.copyfile(small_dataset / "img_00001.png", small_dataset / "dup.png")
    _save_noise(small_dataset / "cmyk.jpg", (40, 40), mode="CMYK")
    _append_rows(small_dataset, "{bad", _row("corrupt.png"), _row("dup.png"), _row("cmyk.jpg"))
    before = snapshot(small_dataset)
    load_imagefolder(small_dataset)
    with pytest.raises(DatasetError):
        load_imagefolder(small_dataset, min_pairs=100)
    assert snapshot(small_dataset) == before


def test_too_few_valid_pairs_is_refused_with_the_count(small_dataset: Path) -> None:
    with pytest.raises(DatasetError, match=r"only 12 valid image-caption pairs \(at least 20"):
        load_imagefolder(small_dataset, min_pairs=20)


def test_missing_folder_or_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_imagefolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=METADATA_FILE):
        load_imagefolder(tmp_path / "empty")


def _fake_pairs(n: int, prefix: str = "img") -> list[ImageCaptionPair]:
    return [ImageCaptionPair(Path(f"/data/{prefix}_{i:05d}.png"), f"caption {i}") for i in range(n)]


def test_split_is_deterministic_and_near_the_requested_fraction() -> None:
    pairs = _fake_pairs(2000)
    train, val = split(pairs, val_fraction=0.1)
    assert split(list(reversed(pairs)), val_fraction=0.1)[1] == list(reversed(val))
    assert set(train).isdisjoint(val) and len(train) + len(val) == 2000
    assert 0.08 < len(val) / 2000 < 0.12


def test_adding_files_does_not_move_existing_ones() -> None:
    pairs = _fake_pairs(300)
    train, val = split(pairs, val_fraction=0.2)
    train2, val2 = split(pairs + _fake_pairs(300, prefix="new"), val_fraction=0.2)
    assert set(train) <= set(train2) and set(val) <= set(val2)


def test_tiny_dataset_still_gets_a_validation_pair() -> None:
    train, val = split(_fake_pairs(3), val_fraction=0.01)
    assert len(val) == 1 and len(train) == 2


def test_loaded_split_is_stable_across_loads(small_dataset: Path) -> None:
    first = load_imagefolder(small_dataset, min_pairs=1)
    second = load_imagefolder(small_dataset, min_pairs=1)
    assert first.val == second.val and first.train == second.train and first.val


def test_preprocess_centre_crops_and_scales_to_minus_one_one(tmp_path: Path) -> None:
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:40] = (0, 255, 0)
    pixels[:, 40:] = (0, 0, 255)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    tensor = preprocess_image(tmp_path / "wide.png", resolution=16)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    # the centre crop keeps only the green middle third
    centre = tensor[:, 4:12, 4:12]
    assert torch.allclose(centre[1], torch.ones_like(centre[1]), atol=0.05)
    assert torch.allclose(centre[0], -torch.ones_like(centre[0]), atol=0.05)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_preprocess_accepts_pil_images_and_upscales() -> None:
    image = Image.new("L", (10, 10), color=128)
    tensor = preprocess_image(image, resolution=24)
    assert tensor.shape == (3, 24, 24)
    assert torch.allclose(tensor, torch.full_like(tensor, 128 / 255 * 2 - 1), atol=0.01)


def test_preprocess_applies_the_exif_orientation(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20, 3), dtype=np.uint8)
    pixels[:, :10] = (255, 0, 0)
    pixels[:, 10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: stored upside down, display rotated by 180 degrees
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    tensor = preprocess_image(tmp_path / "rotated.png", resolution=20)
    assert tensor[2, :, :8].mean() > 0.9, "blue is on the left once upright"
    assert tensor[0, :, 12:].mean() > 0.9, "red is on the right once upright"
