"""What the UI shows of each asset: table metadata, markdown tables and small plots.

Plots are PNGs embedded as base64 in markdown metadata (as Dagster's quickstart_etl
does), drawn with matplotlib's Agg backend, imported only when a plot is made.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import dagster as dg
import pandas as pd

_TYPES = {"object": "string", "str": "string", "float64": "float", "int64": "int", "bool": "bool",
          "boolean": "bool", "Int64": "int"}


def table_metadata(frame: pd.DataFrame) -> dict[str, object]:
    """Row count and column schema of a table an asset wrote."""
    columns = [
        dg.TableColumn(str(name), _TYPES.get(str(dtype), str(dtype)))
        for name, dtype in frame.dtypes.items()
    ]
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
    }


def markdown_table(frame: pd.DataFrame, max_rows: int = 20, digits: int = 3) -> str:
    """A markdown table of the first `max_rows` rows (numbers rounded)."""
    shown = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in shown.itertuples(
        index=False
    )]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *body, *more])


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.{digits}f}"
    return str(value)


def plot_markdown(draw: Callable, title: str, size: tuple[float, float] = (5, 3.5)) -> str:
    """Markdown embedding the PNG that `draw(ax)` draws (a small figure, 90 dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{title}](data:image/png;base64,{data})"


def heatmap(matrix: pd.DataFrame, label: str) -> Callable:
    """A drawer of a model x dataset heatmap (paper Fig. 3b); NaN cells are left blank."""

    def draw(ax) -> None:
        image = ax.imshow(matrix.to_numpy(dtype=float), aspect="auto", cmap="viridis")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=60, ha="right",
                      fontsize=6)
        ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=6)
        ax.figure.colorbar(image, ax=ax, label=label)

    return draw


def scatter(x: pd.Series, y: pd.Series, xlabel: str, ylabel: str) -> Callable:
    """A drawer of a scatter plot with the y = x line (paper Fig. 3a: before vs after)."""

    def draw(ax) -> None:
        ax.scatter(x, y, s=14)
        low, high = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return draw


def bars(values: pd.Series, xlabel: str) -> Callable:
    """A drawer of horizontal bars, largest on top (feature importances, paper Table 1)."""

    def draw(ax) -> None:
        shown = values.iloc[::-1]
        ax.barh(range(len(shown)), shown.to_numpy())
        ax.set_yticks(range(len(shown)), shown.index, fontsize=7)
        ax.set_xlabel(xlabel)

    return draw


def lines(table: pd.DataFrame, xlabel: str, ylabel: str) -> Callable:
    """A drawer of one line per column over the index (sparsity curve, evaluation trend)."""

    def draw(ax) -> None:
        for column in table.columns:
            ax.plot(table.index, table[column], marker="o", markersize=3, label=str(column))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)

    return draw


def reliability(curve: pd.DataFrame) -> Callable:
    """A drawer of a reliability diagram: observed near-best frequency against the mean
    calibrated probability per bin (marker area ~ pairs in the bin), and the diagonal."""

    def draw(ax) -> None:
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        ax.scatter(curve["probability"], curve["frequency"],
                   s=12 + 60 * curve["count"] / max(float(curve["count"].max()), 1.0))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("calibrated probability (cross-fitted)")
        ax.set_ylabel("observed near-best frequency")

    return draw
