"""Evaluation reports: the JSON document and the printed methods x metrics table.

JSON layout (one format for both protocols):
    {"wall_s": float, "protocol": "loo" | "sparsity", "kb": str, "ranker": str,
     "seed": int, "use_score_before": bool, "targets": [...] | null,
     "walks": int, "iterations": int, "sparsity_seeds": int (sparsity only), "skipped": [...],
     "methods": {name: {"mean": {osr, wtau, o2b, o2o, top1, pearson},
                        "per_dataset": {dataset_id: {same keys}}}},
     "levels": {"0.1": {name: {"mean": {...}}, "evaluated": n, "skipped": n}, ...}}
`levels` is present for the sparsity protocol only; there `methods` pools every level
and draw (per-dataset values = mean over levels and draws). Metrics that do not apply
are null.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path

import pandas as pd

from mnc_core.engine.metrics import HIGHER_IS_BETTER_METRIC, METRIC_NAMES
from mnc_core.engine.protocols import BASELINES, LOO_VARIANTS
from mnc_core.folders import file_in_the_way, leftover_name, sweep_leftovers

METHOD_ORDER = (*LOO_VARIANTS, *BASELINES)  # table rows; other names follow in given order


def _cell(value: float | None, metric: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%" if metric == "osr" else f"{value:.3f}"


def methods_table(methods: dict[str, dict]) -> str:
    """A plain-text table: one row per method, one column per metric (arrows = direction)."""
    names = [m for m in METHOD_ORDER if m in methods] + [
        m for m in methods if m not in METHOD_ORDER
    ]
    headers = [f"{m} {'↑' if HIGHER_IS_BETTER_METRIC[m] else '↓'}" for m in METRIC_NAMES]
    width = max(len("method"), *(len(n) for n in names))
    lines = ["  ".join([f"{'method':<{width}}", *(f"{h:>9}" for h in headers)])]
    for name in names:
        mean = methods[name]["mean"]
        cells = [f"{_cell(mean.get(m), m):>9}" for m in METRIC_NAMES]
        lines.append("  ".join([f"{name:<{width}}", *cells]))
    return "\n".join(lines)


def levels_table(levels: dict[str, dict], metric: str = "osr") -> str:
    """Sparsity: one row per level, one column per method, for one metric."""
    methods = [m for m in METHOD_ORDER if any(m in v for v in levels.values())]
    lines = ["  ".join([f"{'level':<6}", *(f"{m:>9}" for m in methods), "evaluated  skipped"])]
    for level, row in levels.items():
        cells = [f"{_cell(row[m]['mean'].get(metric), metric):>9}" for m in methods]
        lines.append(
            "  ".join([f"{level:<6}", *cells, f"{row['evaluated']:>9}  {row['skipped']:>7}"])
        )
    return f"{metric} per sparsity level\n" + "\n".join(lines)


def _optional(value) -> float | None:
    """A float, or None for a missing value (None or NaN)."""
    return None if pd.isna(value) else float(value)


def ranking_table(table: pd.DataFrame) -> str:
    """`mnc rank`'s printed ranking (`table`: `rank_new_dataset`'s frame, index = model)."""
    width = max([40, *map(len, table.index)])  # long model ids keep the columns aligned
    lines = [f"{'rank':>4}  {'model':<{width}} {'goodness':>9} {'confidence':>10} {'known':>10}"]
    for row in ranking_rows(table):
        confidence, known = row["confidence"], row["known_score"]
        lines.append(
            f"{row['rank']:>4}  {row['model']:<{width}} {row['goodness']:>9.3f} "
            f"{'n/a' if confidence is None else f'{confidence:.2f}':>10} "
            f"{'-' if known is None else f'{known:.4g}':>10}"
        )
    return "\n".join(lines)


def ranking_rows(table: pd.DataFrame) -> list[dict]:
    """The `ranking` list of `mnc rank --json`: one dict per model, null where unknown."""
    return [
        {
            "model": model,
            "rank": int(row["rank"]),
            "goodness": float(row["goodness"]),
            "confidence": _optional(row["confidence"]),
            "known_score": _optional(row["known_score"]),
        }
        for model, row in table.iterrows()
    ]


# Written to the process's own stream, never opened by name: opening /dev/stdout when it
# is redirected to a file would truncate what the command already printed there.
_STREAMS = {"/dev/stdout": "stdout", "/dev/fd/1": "stdout",
            "/dev/stderr": "stderr", "/dev/fd/2": "stderr"}

REPLACE, THROUGH, STREAM = "replace", "through", "stream"


def json_destination(path: Path) -> str:
    """How a report goes to `path`, the one rule for every `--json`; ValueError if refused.

    `replace`: absent or a regular file (also through a link: the file it points to is
    replaced and the link kept), written atomically. `through`: a FIFO or /dev/null,
    opened and written, never replaced. `stream`: /dev/stdout or /dev/stderr. Refused:
    folders, broken links, other devices and sockets. Why: an atomic replace of a
    device node or a pipe would put a regular file in its place (as root, over
    /dev/null).
    """
    if os.path.abspath(path) in _STREAMS:
        return STREAM
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise ValueError(f"{path}: is a broken link; --json needs a file path") from None
        return REPLACE
    except NotADirectoryError:  # an ancestor is a file: check_json_path names it
        return REPLACE
    if stat.S_ISREG(mode):
        return REPLACE
    if stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and os.path.samefile(path, os.devnull)):
        return THROUGH
    kind = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}.get(
                stat.S_IFMT(mode), "not a regular file")
    raise ValueError(
        f"{path}: is {kind}; --json needs a file path (or a FIFO, /dev/null, /dev/stdout)"
    )


def check_json_path(path: Path, kb: Path | None = None) -> None:
    """Refuse, before any long work, a JSON report path that cannot or must not be written.

    Why: an evaluation runs minutes; finding out afterwards that `--json` names a
    folder or an unwritable place would lose its result. A path inside the knowledge
    base folder `kb` is refused too: it could overwrite one of the KB's files.
    """
    path = Path(path)
    if kb is not None and Path(kb).resolve() in path.resolve().parents:
        raise ValueError(f"{path}: inside the knowledge base folder {kb}; write reports elsewhere")
    destination = json_destination(path)
    if destination == STREAM:
        return
    if destination == THROUGH:
        if not os.access(path, os.W_OK):
            raise ValueError(f"{path}: cannot write to it (permission denied)")
        return
    path = Path(os.path.realpath(path))
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise ValueError(f"{path}: {blocking} is not a folder; --json needs a file path")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot write into {parent} (permission denied)")


def write_json(document: dict, path: Path) -> None:
    """Write the report where `json_destination` says; a regular file atomically (temp
    file + rename, so an interrupt never leaves half a report), with the permissions an
    existing report had, or else the user's umask."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    destination = json_destination(path)
    if destination == STREAM:
        stream = getattr(sys, _STREAMS[os.path.abspath(path)])
        stream.write(text)
        stream.flush()
    elif destination == THROUGH:
        with open(path, "w") as out:
            out.write(text)
    else:
        _replace_file(Path(os.path.realpath(path)), text)


def _replace_file(path: Path, text: str) -> None:
    """Atomically put `text` at `path`; staging follows the one rule of mnc_core.folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    keep_mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    tmp = leftover_name(path)
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    try:
        with os.fdopen(handle, "w") as out:
            if keep_mode is not None:
                os.fchmod(out.fileno(), keep_mode)
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
