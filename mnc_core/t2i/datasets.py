"""Image-caption datasets in the Hugging Face imagefolder layout: validate, split, preprocess.

A dataset is a folder of images plus `metadata.jsonl` (one JSON object per line with
`file_name`, relative to the folder, and `text`, the caption). Real folders are messy,
and one bad image crashing a two-hour fine-tune is the expensive way to find out, so
`load_imagefolder` decodes every image up front and sorts problems into:

- skipped (listed with file name and reason, never deleted or modified): unreadable or
  truncated images, images with no caption (no row, or empty text), rows whose file is
  missing, duplicate images (same bytes, or the same file listed twice), images below
  a minimum side, rows that are not valid JSON objects (reported with the line number);
- converted (kept, listed): images whose mode is not RGB (CMYK, grayscale, palette,
  alpha, 16-bit, 32-bit integer, float ...), which `to_rgb` converts to RGB with their
  real range (an image mode it cannot convert is skipped with the reason);
- any other problem of one row (a file name the file system refuses, such as one of
  300 characters) skips that row, listed, instead of failing the whole validation.

`metadata.jsonl` is read by the project's one text rule (`mnc_core.textfiles`): a
UTF-8 byte-order mark at the start is ignored, a line that is not UTF-8 or holds a
NUL byte is skipped and listed. Images are turned upright (EXIF orientation) once, in
`open_rgb`; everything computed from an image (pixels, crop geometry, size
conditioning) starts from that upright image.

A dataset with fewer than `min_pairs` valid pairs is refused (`DatasetError`).
The train/validation split hashes each file name, so adding files to a dataset does
not move existing files between train and validation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import transforms

from mnc_core.paths import IMAGE_EXTENSIONS, METADATA_FILE
from mnc_core.textfiles import TextFileError, decode

log = logging.getLogger(__name__)

DEFAULT_MIN_PAIRS = 8
DEFAULT_MIN_SIDE = 32
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_RESOLUTION = 512


class DatasetError(ValueError):
    """A dataset folder that cannot be used (no metadata, too few valid pairs)."""


class ImageModeError(ValueError):
    """An image whose pixel mode cannot be turned into RGB faithfully (the reason says why)."""


@dataclass(frozen=True)
class ImageCaptionPair:
    """One valid image and its caption; `sha256` is the digest of the image file's bytes."""

    path: Path
    caption: str
    sha256: str = ""


@dataclass(frozen=True)
class DatasetIssue:
    """One problem found in a dataset folder: the file (or metadata line) and why."""

    file: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{METADATA_FILE} line {self.line}" if self.line is not None else self.file
        if self.line is not None and self.file:
            where += f" ({self.file})"
        return f"{where}: {self.reason}"


@dataclass
class ValidationReport:
    """What validation found: skipped files (not used) and converted files (used as RGB)."""

    root: Path
    skipped: list[DatasetIssue] = field(default_factory=list)
    converted: list[DatasetIssue] = field(default_factory=list)
    n_valid: int = 0

    def lines(self) -> list[str]:
        """Human-readable lines, one per issue, prefixed with the dataset folder."""
        return [f"{self.root}: skipped {issue}" for issue in self.skipped] + [
            f"{self.root}: converted {issue}" for issue in self.converted
        ]

    def summary(self) -> str:
        return (
            f"{self.root}: {self.n_valid} valid pairs, {len(self.skipped)} skipped, "
            f"{len(self.converted)} converted to RGB"
        )


@dataclass
class ImageCaptionDataset:
    """A validated dataset: deterministic train/validation lists plus the validation report."""

    root: Path
    train: list[ImageCaptionPair]
    val: list[ImageCaptionPair]
    report: ValidationReport

    @property
    def pairs(self) -> list[ImageCaptionPair]:
        """Every valid pair, sorted by file name (train and validation together)."""
        return sorted(self.train + self.val, key=lambda p: p.path.as_posix())


@dataclass
class _Row:
    line: int
    file_name: str
    caption: str


def _parse_metadata(root: Path, report: ValidationReport) -> dict[str, _Row]:
    """Read metadata.jsonl; bad lines and repeated file names go to the report."""
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        raise DatasetError(f"{root}: no {METADATA_FILE} (an imagefolder needs file_name/text rows)")
    rows: dict[str, _Row] = {}
    with meta_path.open("rb") as handle:
        for line_no, raw_bytes in enumerate(handle, start=1):
            try:  # the one text rule: strict UTF-8, a leading BOM ignored, no NUL
                raw = decode(raw_bytes, METADATA_FILE, start_of_file=line_no == 1,
                             first_line=line_no)
            except TextFileError as err:
                report.skipped.append(DatasetIssue("", err.reason, line_no))
                continue
            if not raw.strip():
                continue
            row = _parse_line(raw, line_no, root, report)
            if row is None:
                continue
            if row.file_name in rows:
                first = rows[row.file_name].line
                report.skipped.append(DatasetIssue(
                    row.file_name, f"duplicate: file listed again (first on line {first})", line_no
                ))
                continue
            rows[row.file_name] = row
    return rows


def _parse_line(raw: str, line_no: int, root: Path, report: ValidationReport) -> _Row | None:
    def bad(reason: str, file: str = "") -> None:
        report.skipped.append(DatasetIssue(file, reason, line_no))

    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        return bad(f"not valid JSON ({err.msg})")
    if not isinstance(obj, dict):
        return bad("not a JSON object")
    file_name = obj.get("file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        return bad("no file_name string")
    file_name = _normalise_name(file_name)
    if file_name is None:
        return bad("file_name must be a relative path inside the dataset folder", obj["file_name"])
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return bad("text is not a string", file_name)
    return _Row(line_no, file_name, (text or "").strip())


def _normalise_name(file_name: str) -> str | None:
    """Relative POSIX form of `file_name`, or None if it escapes the dataset folder."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.as_posix()


def _scan_images(root: Path) -> set[str]:
    """Relative names of the image files in the folder (recursively, hidden entries excluded)."""
    names = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            names.add(rel.as_posix())
    return names


def _inspect_image(path: Path, min_side: int) -> tuple[str | None, str | None]:
    """Decode the whole image; return (reason to skip, original mode if not RGB)."""
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
            mode = image.mode
            to_rgb(image)  # the conversion training will do: refused here, with its reason
    except UnidentifiedImageError:
        return "unreadable: not an image PIL can identify", None
    except Image.DecompressionBombError as err:
        return f"too large to decode safely ({err})", None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        return f"{reason} image ({err})", None
    except ImageModeError as err:
        return str(err), None
    if min(width, height) < min_side:
        return f"tiny image {width}x{height} (min side {min_side} px)", None
    return None, (mode if mode != "RGB" else None)


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def validate_imagefolder(
    root: Path, min_side: int = DEFAULT_MIN_SIDE
) -> tuple[list[ImageCaptionPair], ValidationReport]:
    """Check every row and every image of `root`; return the valid pairs and the report.

    Nothing on disk is changed: bad files are only listed in the report.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    report = ValidationReport(root=root)
    rows = _parse_metadata(root, report)
    images = _scan_images(root)
    for name in sorted(images - rows.keys()):
        report.skipped.append(DatasetIssue(name, f"missing caption: no row in {METADATA_FILE}"))
    pairs: list[ImageCaptionPair] = []
    seen_digests: dict[str, str] = {}
    for row in rows.values():  # metadata order: the first copy of a duplicate is kept
        try:
            pair = _check_row(root, row, min_side, seen_digests, report)
        except OSError as err:  # e.g. a name too long for the file system: skip this row
            reason = f"cannot be read ({err.strerror or err})"
            report.skipped.append(DatasetIssue(row.file_name, reason, row.line))
            continue
        if pair is not None:
            pairs.append(pair)
    report.n_valid = len(pairs)
    return pairs, report


def _check_row(
    root: Path, row: _Row, min_side: int, seen: dict[str, str], report: ValidationReport
) -> ImageCaptionPair | None:
    name = row.file_name
    path = root / name
    if not path.is_file():
        report.skipped.append(DatasetIssue(name, "missing file: row points to no file", row.line))
        return None
    if path.suffix.lower() not in IMAGE_EXTENSIONS:  # what the folder scan and caches cover
        report.skipped.append(DatasetIssue(
            name, f"not an image file name (extensions: {' '.join(sorted(IMAGE_EXTENSIONS))})",
            row.line,
        ))
        return None
    if not path.resolve().is_relative_to(root.resolve()):
        report.skipped.append(
            DatasetIssue(name, "outside the dataset folder (through a link)", row.line)
        )
        return None
    if not row.caption:
        report.skipped.append(DatasetIssue(name, "missing caption: empty text", row.line))
        return None
    reason, mode = _inspect_image(path, min_side)
    if reason is not None:
        report.skipped.append(DatasetIssue(name, reason, row.line))
        return None
    digest = _file_digest(path)
    if digest in seen:
        report.skipped.append(
            DatasetIssue(name, f"duplicate: same image bytes as {seen[digest]}", row.line)
        )
        return None
    seen[digest] = name
    if mode is not None:
        report.converted.append(DatasetIssue(name, f"mode {mode} converted to RGB", row.line))
    return ImageCaptionPair(path=path, caption=row.caption, sha256=digest)


def _split_score(pair: ImageCaptionPair, root: Path | None, salt: str) -> float:
    """Position in [0, 1) from a hash of the file name: stable when other files come and go."""
    name = pair.path.relative_to(root).as_posix() if root is not None else pair.path.name
    digest = hashlib.sha256(f"{salt}{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(
    pairs: Sequence[ImageCaptionPair],
    val_fraction: float = DEFAULT_VAL_FRACTION,
    root: Path | None = None,
    salt: str = "",
) -> tuple[list[ImageCaptionPair], list[ImageCaptionPair]]:
    """Deterministic train/validation split by hash of each file name (relative to `root`).

    A file goes to validation when its hash position is below `val_fraction`, so the
    decision for one file never depends on the others. If that leaves validation empty
    (tiny datasets) but there are at least two pairs, the file with the lowest hash
    position is moved there, so a validation set always exists.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    scores = [_split_score(p, root, salt) for p in pairs]
    val_idx = {i for i, score in enumerate(scores) if score < val_fraction}
    if not val_idx and val_fraction > 0 and len(pairs) >= 2:
        val_idx = {min(range(len(pairs)), key=scores.__getitem__)}
    train = [p for i, p in enumerate(pairs) if i not in val_idx]
    return train, [p for i, p in enumerate(pairs) if i in val_idx]


def load_imagefolder(
    path: Path,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    *,
    min_side: int = DEFAULT_MIN_SIDE,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> ImageCaptionDataset:
    """Validate the imagefolder at `path` and split it; refuse it if too few pairs are valid."""
    root = Path(path)
    pairs, report = validate_imagefolder(root, min_side=min_side)
    for line in report.lines():
        log.warning(line)
    if len(pairs) < min_pairs:
        raise DatasetError(
            f"{root}: only {len(pairs)} valid image-caption pairs (at least {min_pairs} needed); "
            f"{len(report.skipped)} skipped: "
            + "; ".join(str(issue) for issue in report.skipped[:10])
            + (" ..." if len(report.skipped) > 10 else "")
        )
    train, val = split(pairs, val_fraction=val_fraction, root=root)
    log.info("%s (train %d, val %d)", report.summary(), len(train), len(val))
    return ImageCaptionDataset(root=root, train=train, val=val, report=report)


def preprocess_image(
    path_or_image: Path | str | Image.Image, resolution: int = DEFAULT_RESOLUTION
) -> torch.Tensor:
    """RGB image -> float tensor 3 x resolution x resolution in [-1, 1] (VAE/training input).

    Apply the EXIF orientation (photos are stored sideways with a rotation tag), resize
    the short side to `resolution`, centre-crop, scale to [-1, 1]: the same
    preprocessing as the diffusers text-to-image training scripts.
    """
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 px, got {resolution}")
    return _training_transform(resolution)(open_rgb(path_or_image))


def open_rgb(path_or_image: Path | str | Image.Image) -> Image.Image:
    """The image as upright RGB (EXIF orientation applied), fully loaded, file closed.

    The one place where the EXIF rotation is applied: pixels, crop geometry and size
    conditioning are all computed from what this returns (an upright image has no
    orientation tag left, so passing it in again changes nothing).
    """
    if isinstance(path_or_image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(path_or_image))
    with Image.open(path_or_image) as opened:
        return to_rgb(ImageOps.exif_transpose(opened))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any pixel mode Pillow opens, as 8-bit RGB with its real range; else `ImageModeError`.

    Why not just `convert("RGB")`: Pillow clips 16-bit, 32-bit integer and float pixels
    to 0..255, so a 16-bit greyscale PNG turned almost all white and a float TIFF
    (values 0..1) black, yet both were reported as converted.
    """
    if image.mode == "RGB":
        return image.copy()
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(image), image.mode)).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ImageModeError(f"mode {image.mode} cannot be converted to RGB ({err})") from err


def _to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit pixels scaled to 0..255 from their real range.

    16-bit modes: 0..65535. `I` (32-bit integer; Pillow opens some 16-bit files so):
    0..65535 when the pixels lie there, else the image's own min..max. `F` (float):
    0..1 when the pixels lie there, else the image's own min..max. NaN or infinite
    pixels are refused: no range can place them.
    """
    pixels = values.astype(np.float64)
    if not np.isfinite(pixels).all():
        raise ImageModeError(f"mode {mode} image with NaN or infinite pixels")
    low, high = float(pixels.min()), float(pixels.max())
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        low, high = 0.0, 65535.0
    elif mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    span = high - low if high > low else 1.0
    return np.round((pixels - low) / span * 255.0).clip(0, 255).astype(np.uint8)


def _training_transform(resolution: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(resolution),
        transforms.ToTensor(),
        transforms.Normalize([0.5], [0.5]),
    ])
