"""Auxiliary records (`aux_edges.csv`): store round trip and validation, TransferGraph import."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from mnc_core.cli import kb_commands
from mnc_core.ids import slugify
from mnc_core.kb import store
from mnc_core.kb.importers.transfergraph import import_transfergraph
from mnc_core.kb.schema import AUX_EDGE_COLUMNS, KnowledgeBase
from mnc_core.kb.store import KnowledgeBaseError, read_kb, write_kb


def _sibling(name: str) -> ModuleType:
    """Load a sibling test module for its fixture helpers (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"aux_{name}", Path(__file__).with_name(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


store_tests = _sibling("test_kb_store.py")
importer_tests = _sibling("test_kb_importers.py")

# --------------------------------------------------------------------- store

AUX_ROWS = {
    "model": ["m-a", "m-b", "m-a", "m-c"],
    "dataset": ["d1", "d1", "d1", "d3"],  # d3 has no primary edge: allowed
    "recipe": ["lora", "lora", "dora", "lora"],
    "score": [11.5, 8.25, 10.0, 4.75],
}


def aux_kb() -> KnowledgeBase:
    """The store tests' small KB plus auxiliary results of two recipes."""
    return replace(store_tests.small_kb(), aux_edges=pd.DataFrame(AUX_ROWS))


@pytest.fixture
def aux_dir(tmp_path: Path) -> Path:
    return write_kb(aux_kb(), tmp_path / "kb")


def test_aux_edges_round_trip(aux_dir: Path) -> None:
    assert (aux_dir / store.AUX_EDGES_CSV).is_file()
    loaded = read_kb(aux_dir)
    pd.testing.assert_frame_equal(loaded.aux_edges, pd.DataFrame(AUX_ROWS))
    pd.testing.assert_frame_equal(loaded.edges, store_tests.small_kb().edges)
    assert loaded.recipes == ["dora", "lora"]
    lora = loaded.aux_score_matrices()["lora"]
    assert lora.loc["d1", "m-b"] == 8.25 and lora.loc["d3", "m-c"] == 4.75


def test_old_kb_without_the_file_reads_with_an_empty_table(tmp_path: Path) -> None:
    folder = write_kb(store_tests.small_kb(), tmp_path / "old")
    assert not (folder / store.AUX_EDGES_CSV).exists()
    loaded = read_kb(folder)
    assert list(loaded.aux_edges.columns) == list(AUX_EDGE_COLUMNS)
    assert loaded.aux_edges.empty and loaded.recipes == []
    assert loaded.aux_score_matrices() == {}


def test_header_only_file_means_no_aux_edges(aux_dir: Path) -> None:
    (aux_dir / store.AUX_EDGES_CSV).write_text(",".join(AUX_EDGE_COLUMNS) + "\n")
    loaded = read_kb(aux_dir)
    assert loaded.aux_edges.empty and list(loaded.aux_edges.columns) == list(AUX_EDGE_COLUMNS)


def test_empty_aux_table_writes_no_file(aux_dir: Path) -> None:
    write_kb(store_tests.small_kb(), aux_dir)
    assert not (aux_dir / store.AUX_EDGES_CSV).exists()
    assert read_kb(aux_dir).aux_edges.empty


_set, _append, _drop_column = store_tests._set, store_tests._append, store_tests._drop_column
AUX = store.AUX_EDGES_CSV
AUX_ERRORS = [
    (_drop_column("recipe"), r"aux_edges\.csv: missing column\(s\) recipe"),
    (_drop_column("score"), r"aux_edges\.csv: missing column\(s\) score"),
    (_set(1, "model", "Bad Model"), r"aux_edges\.csv row 2, column model: id 'Bad Model'"),
    (_set(2, "dataset", "d/1"), r"aux_edges\.csv row 3, column dataset: id 'd/1'"),
    (_set(3, "recipe", "LoRA"), r"aux_edges\.csv row 4, column recipe: id 'LoRA'"),
    (_set(0, "recipe", ""), r"aux_edges\.csv row 1, column recipe: id ''"),
    (_set(2, "model", "m-zzz"), r"aux_edges\.csv row 3: model 'm-zzz' is not in model_feat"),
    (_set(3, "dataset", "d9"), r"aux_edges\.csv row 4: dataset 'd9' is not in dataset_feat"),
    (
        _append({"model": "m-a", "dataset": "d1", "recipe": "dora", "score": "1"}),
        r"aux_edges\.csv row 5: duplicate \(model, dataset, recipe\) \('m-a', 'd1', 'dora'\) "
        r"\(first at row 3\)",
    ),
    (_set(1, "score", "nan"), r"aux_edges\.csv row 2: column score value 'nan' is not finite"),
    (_set(0, "score", "-inf"), r"aux_edges\.csv row 1: column score value '-inf' is not fini"),
    (_set(3, "score", ""), r"aux_edges\.csv row 4: column score is empty"),
    (_set(2, "score", "high"), r"aux_edges\.csv row 3: column score value 'high' is not a nu"),
]


@pytest.mark.parametrize(("edit", "pattern"), AUX_ERRORS)
def test_invalid_aux_edges_name_file_and_row(aux_dir: Path, edit, pattern: str) -> None:
    read_kb(aux_dir)  # valid before the edit
    store_tests._edit_csv(aux_dir, AUX, edit)
    with pytest.raises(KnowledgeBaseError, match=pattern):
        read_kb(aux_dir)


def test_invalid_aux_edges_are_refused_on_write(aux_dir: Path, snapshot) -> None:
    before = snapshot(aux_dir)
    kb = aux_kb()
    bad = replace(kb, aux_edges=kb.aux_edges.assign(model=["m-a", "m-b", "m-a", "m-q"]))
    with pytest.raises(KnowledgeBaseError, match=r"refusing to write.*kb/aux_edges\.csv row 4"):
        write_kb(bad, aux_dir)
    assert snapshot(aux_dir) == before


# --------------------------------------------------------------------- TransferGraph importer

A, B, NOMETA = slugify("Org/Model-A"), slugify("org/model-b"), slugify("Org/NoMeta")
LORA_ONLY = slugify("Org/LoraOnly")
COLA, ROTTEN = slugify("glue/cola"), "rotten_tomatoes"
AUX_RUNS = [
    # model, finetuned_dataset, eval_accuracy, peft_method, train_runtime (s)
    ("org/model-b", "rotten_tomatoes", 0.65, "lora", 10.0),  # repeats 0.55 in RUNS: mean 0.60
    ("Org/Model-A", "glue_cola", 0.66, "lora", 10.0),  # alias label of glue/cola
    ("Org/LoraOnly", "glue/cola", 0.50, "lora", 10.0),  # model not in the full-run zoo
    ("Org/Model-A", "ag_news", 0.70, "lora", 10.0),  # a target, but no full run on it
    ("Org/Model-A", "none", 0.70, "lora", 10.0),  # junk dataset label
    ("Org/NoMeta", "glue/cola", math.nan, "lora", 10.0),  # no score
]
AUX_DROPS = {
    "auxiliary lora run of a model or dataset without a kept full run (not in the KB)": 2,
    "auxiliary lora dataset label not in target_dataset_features.csv (none)": 1,
    "auxiliary lora run without a finite eval_accuracy": 1,
    "repeated runs of one auxiliary lora (model, dataset) averaged into one edge": 1,
}


@pytest.fixture
def tg_dir(tmp_path: Path) -> Path:
    return importer_tests.write_transfergraph(tmp_path / "tg", runs=importer_tests.RUNS + AUX_RUNS)


def _aux(kb: KnowledgeBase) -> dict:
    return {
        (m, d, r): round(s, 6)
        for m, d, r, s in kb.aux_edges[list(AUX_EDGE_COLUMNS)].itertuples(index=False)
    }


def test_transfergraph_aux_edges_are_the_other_method(tg_dir: Path) -> None:
    result = import_transfergraph(tg_dir)
    kb = result.kb
    assert _aux(kb) == {
        (A, COLA, "lora"): 0.66,
        (A, ROTTEN, "lora"): 0.9,
        (B, ROTTEN, "lora"): 0.6,
    }
    assert kb.recipes == ["lora"]
    assert kb.models == sorted([A, B, NOMETA]) and "ag_news" not in kb.datasets
    for reason, count in AUX_DROPS.items():
        assert result.dropped.get(reason) == count, reason
    assert not any(k.startswith("runs of the other fine-tuning method") for k in result.dropped)
    assert kb.extra["auxiliary"] == "lora"
    assert "Auxiliary edges: 3 lora" in kb.description
    plain = import_transfergraph(tg_dir, auxiliary=False).kb
    pd.testing.assert_frame_equal(kb.edges, plain.edges)  # primary edges do not change
    pd.testing.assert_frame_equal(kb.model_features, plain.model_features)


def test_transfergraph_auxiliary_off(tg_dir: Path) -> None:
    result = import_transfergraph(tg_dir, auxiliary=False)
    assert result.kb.aux_edges.empty and result.kb.recipes == []
    assert result.kb.extra["auxiliary"] is None
    assert "No auxiliary edges" in result.kb.description
    other = len([r for r in importer_tests.RUNS + AUX_RUNS if r[3] == "lora"])
    assert result.dropped["runs of the other fine-tuning method (kept: full)"] == other
    assert not any(k.startswith("auxiliary") for k in result.dropped)


def test_transfergraph_lora_kb_gets_full_aux_edges(tg_dir: Path) -> None:
    result = import_transfergraph(tg_dir, peft="lora")
    kb = result.kb
    assert kb.datasets == ["ag_news", COLA, ROTTEN] and LORA_ONLY in kb.models
    # Full runs of the lora KB's models on its datasets (irony is not one of them);
    # Model-A's full rotten_tomatoes run has no score.
    assert _aux(kb) == {
        (A, COLA, "full"): 0.75,
        (B, COLA, "full"): 0.65,
        (B, ROTTEN, "full"): 0.85,
    }
    assert kb.extra["auxiliary"] == "full"


def test_transfergraph_aux_edges_round_trip(tg_dir: Path, tmp_path: Path) -> None:
    kb = import_transfergraph(tg_dir).kb
    loaded = read_kb(write_kb(kb, tmp_path / "kb"))
    assert len(loaded.aux_edges) == 3
    pd.testing.assert_frame_equal(loaded.aux_edges, kb.aux_edges)


def test_transfergraph_without_peft_column_has_no_aux_edges(tmp_path: Path) -> None:
    folder = importer_tests.write_transfergraph(tmp_path / "tg")
    records = pd.read_csv(folder / "records.csv").drop(columns="peft_method")
    records.to_csv(folder / "records.csv", index=False)
    kb = import_transfergraph(folder).kb
    assert kb.aux_edges.empty and kb.extra["auxiliary"] == "lora"
    assert len(kb.edges) == 7  # every run counts as full fine-tuning now


# --------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    kb_commands.register(application)
    return application


def test_cli_auxiliary_flag(app: typer.Typer, tg_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "kb"
    result = runner.invoke(app, ["import", "transfergraph", str(tg_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "  3 auxiliary edges (recipe lora)" in result.output
    assert len(read_kb(out).aux_edges) == 3
    off = runner.invoke(
        app, ["import", "transfergraph", str(tg_dir), "--out", str(out), "--no-auxiliary"]
    )
    assert off.exit_code == 0, off.output
    assert "auxiliary edges" not in off.output
    assert "runs of the other fine-tuning method (kept: full)" in off.output
    assert not (out / store.AUX_EDGES_CSV).exists() and read_kb(out).aux_edges.empty


# --------------------------------------------------------------------- real benchmark data


@pytest.mark.benchmark_data
def test_real_transfergraph_text_aux_edges(tmp_path: Path) -> None:
    src = importer_tests._real("transfergraph-text")
    result = import_transfergraph(src, peft="full")
    kb = read_kb(write_kb(result.kb, tmp_path / "kb"))
    assert kb.recipes == ["lora"] and kb.extra["auxiliary"] == "lora"
    records = pd.read_csv(src / "records.csv")
    lora = records[records["peft_method"] == "lora"].dropna(subset=["model", "eval_accuracy"])
    original = {(k, i): o for k, i, o in kb.id_map.itertuples(index=False)}
    models = {o for (k, _), o in original.items() if k == "model"}
    datasets = {o for (k, _), o in original.items() if k == "dataset"}
    inside = lora[lora["model"].isin(models) & lora["finetuned_dataset"].isin(datasets)]
    expected = inside.groupby(["model", "finetuned_dataset"])["eval_accuracy"].mean()
    assert len(kb.aux_edges) == len(expected) > 1000
    got = {
        (original[("model", m)], original[("dataset", d)]): s
        for m, d, s in kb.aux_edges[["model", "dataset", "score"]].itertuples(index=False)
    }
    assert got == pytest.approx(expected.to_dict())
    assert set(kb.aux_edges["model"]) <= set(kb.models)
    assert set(kb.aux_edges["dataset"]) <= set(kb.datasets)
    pd.testing.assert_frame_equal(kb.aux_edges, result.kb.aux_edges)
