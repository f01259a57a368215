"""Compare the catalog's counted params and TFLOPs with the paper's Table 2.

Prints a markdown table; `--write` also puts it into mnc_core/t2i/zoo/CATALOG.md
between the `table2` markers. Counting runs on the meta device (no weights,
no memory); the whole catalog takes well under a minute on 2 CPU cores.

    .venv/bin/python benchmarks/zoo_table2.py [--write]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from mnc_core.t2i.zoo import CATALOG_DIR, CATALOG_MODEL_IDS, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import denoiser_cost
from mnc_core.t2i.zoo.paper_table2 import PAPER_TABLE2

CATALOG_MD = CATALOG_DIR.parent / "CATALOG.md"
START, END = "<!-- table2:start -->", "<!-- table2:end -->"
COMPARE_RESOLUTION = 512  # the paper crops its datasets to 512x512


def comparison_table() -> str:
    """Markdown rows: paper vs counted params and TFLOPs for every catalog model."""
    lines = [
        "| model | params paper [G] | params counted [G] (nn.Parameter only) | ratio | "
        "TFLOP paper | TFLOP at default call (res, steps x passes) | ratio | "
        f"TFLOP at {COMPARE_RESOLUTION} px | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model_id in CATALOG_MODEL_IDS:
        paper = PAPER_TABLE2[model_id]
        model = load_zoo_configs(CATALOG_DIR / model_id)
        default = denoiser_cost(model)
        small = denoiser_cost(model, COMPARE_RESOLUTION)
        s = default.sampling
        lines.append(
            f"| {model_id} | {paper.params_g:.2f} | {default.params / 1e9:.3f} "
            f"({default.trainable_params / 1e9:.3f}) | {default.params / 1e9 / paper.params_g:.3f} "
            f"| {paper.tflops:.2f} | {default.tflops_per_image:.2f} "
            f"({s.height} px, {s.steps} x {s.guidance_passes}) "
            f"| {default.tflops_per_image / paper.tflops:.2f} "
            f"| {small.tflops_per_image:.2f} | {small.tflops_per_image / paper.tflops:.2f} |"
        )
    return "\n".join(lines)


def write_into_catalog_md(table: str, path: Path = CATALOG_MD) -> None:
    """Replace the text between the table2 markers of CATALOG.md."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update CATALOG.md too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    table = comparison_table()
    print(table)
    print(f"\n(counted in {time.perf_counter() - started:.1f} s)")
    if args.write:
        write_into_catalog_md(table)
        print(f"wrote {CATALOG_MD}")


if __name__ == "__main__":
    main()
