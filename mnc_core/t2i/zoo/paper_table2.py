"""The paper's Table 2 (pretrained base models), the reference our counts are checked against.

Values as printed: denoiser parameters in G (1e9) and TFLOP to generate one image.
"""

from __future__ import annotations

from typing import NamedTuple


class Table2Row(NamedTuple):
    name: str
    params_g: float
    tflops: float


PAPER_TABLE2: dict[str, Table2Row] = {
    "flux1-dev": Table2Row("Flux.1 dev", 11.90, 563.25),
    "juggernaut-x": Table2Row("Juggernaut X", 2.57, 155.98),
    "kolors": Table2Row("Kolors", 2.58, 174.35),
    "pixart-sigma": Table2Row("PixArt Sigma", 0.61, 52.67),
    "sana-1.6b": Table2Row("Sana 1.6B", 1.60, 38.28),
    "sd15": Table2Row("SD 1.5", 0.86, 71.59),
    "sd35-medium": Table2Row("SD 3.5", 2.47, 124.42),
    "sdxl": Table2Row("SDXL", 2.57, 155.98),
    "segmind-vega": Table2Row("Segmind Vega", 0.75, 67.01),
    "sana-4.8b": Table2Row("Sana 4.8B", 4.72, 360.60),
}
# Documented tolerance for parameter counts (relative), see CATALOG.md.
PARAMS_TOLERANCE = 0.02
