"""The on-disk KB format: round-trip, every validation error, atomic writes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnc_core.kb import store
from mnc_core.kb.schema import KnowledgeBase
from mnc_core.kb.store import KnowledgeBaseError, read_kb, write_kb


def small_kb() -> KnowledgeBase:
    """Three models, three datasets (one without edges), all optional parts present."""
    edges = pd.DataFrame(
        {
            "model": ["m-a", "m-b", "m-c", "m-a", "m-b"],
            "dataset": ["d1", "d1", "d1", "d2", "d2"],
            "score": [12.5, 9.25, 30.0, 7.0, 8.125],
            "score_before": [20.0, np.nan, 31.0, 9.5, 10.0],
            "cost": [2.5, 3.0, np.nan, 4.0, 7.75],
        }
    )
    model_features = pd.DataFrame(
        {"log_params": [0.1, -1.2, 2.0], "arch_unet": [1.0, 0.0, 0.0]},
        index=pd.Index(["m-a", "m-b", "m-c"], name="model"),
    )
    dataset_features = pd.DataFrame(
        {"f0": [0.5, -0.5, 0.25]}, index=pd.Index(["d1", "d2", "d3"], name="dataset")
    )
    distances = pd.DataFrame(
        {"dataset_a": ["d1", "d1"], "dataset_b": ["d2", "d3"], "distance": [11.0, 0.0]}
    )
    id_map = pd.DataFrame(
        {"kind": ["model", "dataset"], "id": ["m-a", "d1"], "original": ["Org/M-A", "D 1"]}
    )
    return KnowledgeBase(
        edges=edges,
        metric="clip_fid",
        higher_is_better=False,
        model_features=model_features,
        dataset_features=dataset_features,
        dataset_distances=distances,
        description="test kb",
        synthetic=True,
        extra={"seed": 3},
        source="tests",
        id_map=id_map,
    )


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return write_kb(small_kb(), tmp_path / "kb")


def test_round_trip_keeps_every_value(kb_dir: Path) -> None:
    original = small_kb()
    loaded = read_kb(kb_dir)
    pd.testing.assert_frame_equal(loaded.edges, original.edges)
    pd.testing.assert_frame_equal(loaded.model_features, original.model_features)
    pd.testing.assert_frame_equal(loaded.dataset_features, original.dataset_features)
    pd.testing.assert_frame_equal(loaded.dataset_distances, original.dataset_distances)
    pd.testing.assert_frame_equal(loaded.id_map, original.id_map)
    assert (loaded.metric, loaded.higher_is_better) == ("clip_fid", False)
    assert (loaded.description, loaded.synthetic) == ("test kb", True)
    assert (loaded.extra, loaded.source) == ({"seed": 3}, "tests")
    assert loaded.datasets == ["d1", "d2", "d3"]
    assert loaded.score_matrix().loc["d3"].isna().all()


def test_write_and_read_kb_returns_what_reading_the_written_folder_gives(
        tmp_path: Path) -> None:
    written = store.write_and_read_kb(small_kb(), tmp_path / "kb")
    loaded = read_kb(tmp_path / "kb")
    for name in ("edges", "model_features", "dataset_features", "dataset_distances", "id_map",
                 "aux_edges"):
        pd.testing.assert_frame_equal(getattr(written, name), getattr(loaded, name))
    assert (written.metric, written.extra, written.source) == (loaded.metric, loaded.extra,
                                                               loaded.source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]  # no staging folder left


def test_write_and_read_kb_refuses_an_invalid_kb_and_keeps_the_old_one(kb_dir: Path) -> None:
    kb = small_kb()
    bad = replace(kb, edges=kb.edges.assign(score=np.nan))
    with pytest.raises(KnowledgeBaseError, match="refusing to write an invalid knowledge base"):
        store.write_and_read_kb(bad, kb_dir)
    pd.testing.assert_frame_equal(read_kb(kb_dir).edges, kb.edges)


def test_zero_dataset_feature_columns_and_empty_distances_round_trip(tmp_path: Path) -> None:
    kb = small_kb()
    bare = KnowledgeBase(
        edges=kb.edges[["model", "dataset", "score"]],
        metric="acc",
        higher_is_better=True,
        model_features=kb.model_features,
        dataset_features=pd.DataFrame(index=pd.Index(["d1", "d2", "d3"], name="dataset")),
        dataset_distances=pd.DataFrame(columns=["dataset_a", "dataset_b", "distance"]),
    )
    loaded = read_kb(write_kb(bare, tmp_path / "bare"))
    assert loaded.dataset_features.shape == (3, 0)
    assert loaded.dataset_distances.empty
    assert loaded.edges["score_before"].isna().all() and loaded.edges["cost"].isna().all()
    assert loaded.id_map is None
    assert not (tmp_path / "bare" / store.IDS_CSV).exists()


def test_optional_edge_columns_may_be_absent_from_the_file(kb_dir: Path) -> None:
    edges = pd.read_csv(kb_dir / store.EDGES_CSV)
    edges[["model", "dataset", "score"]].to_csv(kb_dir / store.EDGES_CSV, index=False)
    loaded = read_kb(kb_dir)
    assert list(loaded.edges.columns) == ["model", "dataset", "score", "score_before", "cost"]
    assert loaded.edges["cost"].isna().all()


def _edit_csv(folder: Path, name: str, edit) -> None:
    """Rewrite one CSV of the KB as text rows (so odd values survive verbatim)."""
    table = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    edit(table)
    table.to_csv(folder / name, index=False)


def _set(row: int, column: str, value: str):
    def edit(table: pd.DataFrame) -> None:
        table.loc[row, column] = value

    return edit


def _append(values: dict):
    def edit(table: pd.DataFrame) -> None:
        table.loc[len(table)] = [values.get(c, "") for c in table.columns]

    return edit


def _drop_column(column: str):
    def edit(table: pd.DataFrame) -> None:
        del table[column]

    return edit


def _drop_rows(table: pd.DataFrame) -> None:
    table.drop(table.index, inplace=True)


EDGES, MODELS, DATASETS, DIST = (
    store.EDGES_CSV,
    store.MODEL_FEATURES_CSV,
    store.DATASET_FEATURES_CSV,
    store.DISTANCES_CSV,
)
CSV_ERRORS = [
    # (file, edit, pattern the message must match)
    (EDGES, _drop_column("score"), r"edges\.csv: missing column\(s\) score"),
    (EDGES, _drop_rows, r"edges\.csv: no rows"),
    (EDGES, _set(2, "model", "Bad Model"), r"edges\.csv row 3, column model: id 'Bad Model'"),
    (EDGES, _set(1, "dataset", "d|x"), r"edges\.csv row 2, column dataset: id 'd\|x'"),
    (EDGES, _set(3, "model", "m-zzz"), r"edges\.csv row 4: model 'm-zzz' is not in model_f"),
    (EDGES, _set(0, "dataset", "d9"), r"edges\.csv row 1: dataset 'd9' is not in dataset_f"),
    (
        EDGES,
        _append({"model": "m-b", "dataset": "d2", "score": "1"}),
        r"edges\.csv row 6: duplicate \(model, dataset\) \('m-b', 'd2'\) \(first at row 5\)",
    ),
    (EDGES, _set(1, "score", "nan"), r"edges\.csv row 2: column score value 'nan' is not fin"),
    (EDGES, _set(4, "score", "inf"), r"edges\.csv row 5: column score value 'inf' is not fin"),
    (EDGES, _set(0, "score", ""), r"edges\.csv row 1: column score is empty"),
    (EDGES, _set(0, "score", "good"), r"edges\.csv row 1: column score value 'good' is not a"),
    (EDGES, _set(2, "score", "1_000"), r"edges\.csv row 3: column score value '1_000' is not a"),
    (EDGES, _set(3, "score_before", "-inf"), r"edges\.csv row 4: column score_before .*fin"),
    (EDGES, _set(2, "cost", "-1"), r"edges\.csv row 3: column cost value -1\.0 is negative"),
    (MODELS, _drop_rows, r"model_features\.csv: no rows"),
    (
        MODELS,
        _append({"model": "m-a", "log_params": "1", "arch_unet": "0"}),
        r"model_features\.csv row 4: duplicate model feature row 'm-a' \(first at row 1\)",
    ),
    (MODELS, _set(1, "arch_unet", "yes"), r"model_features\.csv row 2: column arch_u"),
    (MODELS, _set(2, "log_params", "NaN"), r"model_features\.csv row 3: .*not finite"),
    (MODELS, _set(0, "log_params", ""), r"model_features\.csv row 1: column log_p"),
    (MODELS, _set(0, "model", "M_A"), r"model_features\.csv row 1, column model: id"),
    (DATASETS, _set(1, "f0", "inf"), r"dataset_features\.csv row 2: column f0 value"),
    (
        DATASETS,
        _append({"dataset": "d2", "f0": "0"}),
        r"dataset_features\.csv row 4: duplicate dataset feature row 'd2'",
    ),
    (DIST, _drop_column("distance"), r"dataset_distances\.csv: missing column"),
    (
        DIST,
        _append({"dataset_a": "d2", "dataset_b": "d2", "distance": "1"}),
        r"dataset_distances\.csv row 3: self-pair 'd2'-'d2'",
    ),
    (
        DIST,
        _append({"dataset_a": "d3", "dataset_b": "d1", "distance": "4"}),
        r"dataset_distances\.csv row 3: duplicate unordered dataset pair \('d1', 'd3'\)",
    ),
    (DIST, _set(0, "distance", "-0.5"), r"distances\.csv row 1: .* negative"),
    (DIST, _set(1, "distance", "nan"), r"distances\.csv row 2: .* not finite"),
    (DIST, _set(1, "distance", ""), r"distances\.csv row 2: column distance is"),
    (DIST, _set(0, "dataset_b", "d7"), r"distances\.csv row 1: dataset_b 'd7'"),
    (DIST, _set(1, "dataset_a", "D1"), r"distances\.csv row 2, column dataset_a"),
    ("ids.csv", _set(0, "kind", "thing"), r"ids\.csv row 1: kind 'thing' must be one of"),
    ("ids.csv", _set(1, "id", "d9"), r"ids\.csv row 2: dataset id 'd9' is not in the KB"),
]


@pytest.mark.parametrize(("name", "edit", "pattern"), CSV_ERRORS)
def test_invalid_csv_is_rejected_naming_file_and_row(
    kb_dir: Path, name: str, edit, pattern: str
) -> None:
    _edit_csv(kb_dir, name, edit)
    with pytest.raises(KnowledgeBaseError, match=pattern):
        read_kb(kb_dir)


def test_model_features_must_start_with_the_id_column(kb_dir: Path) -> None:
    table = pd.read_csv(kb_dir / store.MODEL_FEATURES_CSV)
    table[["log_params", "model", "arch_unet"]].to_csv(kb_dir / "model_features.csv", index=False)
    with pytest.raises(KnowledgeBaseError, match=r"first column must be 'model', found 'log_p"):
        read_kb(kb_dir)


@pytest.mark.parametrize("name", store.REQUIRED_FILES)
def test_missing_file_is_named(kb_dir: Path, name: str) -> None:
    (kb_dir / name).unlink()
    with pytest.raises(KnowledgeBaseError, match=rf"missing file\(s\) {name}"):
        read_kb(kb_dir)


def test_repeated_column_is_rejected(kb_dir: Path) -> None:
    text = (kb_dir / store.MODEL_FEATURES_CSV).read_text().splitlines()
    text[0] = "model,log_params,log_params"
    (kb_dir / store.MODEL_FEATURES_CSV).write_text("\n".join(text) + "\n")
    with pytest.raises(
        KnowledgeBaseError, match=r"model_features\.csv: duplicate column\(s\) log_p"
    ):
        read_kb(kb_dir)


def test_row_numbers_count_blank_lines_and_trailing_ones_are_ignored(kb_dir: Path) -> None:
    file = kb_dir / store.EDGES_CSV
    lines = file.read_text().splitlines()
    file.write_text("\n".join(lines) + "\n\n\n")  # blank lines at the end: still valid
    assert len(read_kb(kb_dir).edges) == len(lines) - 1
    # a blank line after data row 1 is named as the 2nd line after the header (pandas
    # alone would skip it and shift every later row number by one)
    file.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")
    with pytest.raises(KnowledgeBaseError, match=r"edges\.csv row 2: blank line"):
        read_kb(kb_dir)


def test_row_with_extra_cells_is_named_as_its_data_row(kb_dir: Path) -> None:
    file = kb_dir / store.EDGES_CSV
    lines = file.read_text().splitlines()
    lines[2] += ",1"  # data row 2
    file.write_text("\n".join(lines) + "\n")
    n_header = len(lines[0].split(","))
    with pytest.raises(KnowledgeBaseError) as caught:
        read_kb(kb_dir)
    assert str(caught.value) == (
        f"{file}: cannot parse as CSV (row 2 has {n_header + 1} cells, the header {n_header})"
    )


def test_empty_csv_file_is_named(kb_dir: Path) -> None:
    (kb_dir / store.DISTANCES_CSV).write_text("")
    with pytest.raises(KnowledgeBaseError, match=r"dataset_distances\.csv: empty file"):
        read_kb(kb_dir)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="knowledge base folder not found"):
        read_kb(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"format_version": 2}, r"unknown format_version 2"),
        ({"format_version": None}, r"unknown format_version None"),
        ({"format_version": True}, r"unknown format_version True"),
        ({"format_version": 1.0}, r"unknown format_version 1\.0"),
        ({"metric": ""}, r"field 'metric' is empty"),
        ({"higher_is_better": "yes"}, r"field 'higher_is_better' must be a JSON bool"),
        ({"synthetic": None}, r"field 'synthetic' must be a JSON bool"),
        ({"extra": [1]}, r"field 'extra' must be a JSON object"),
    ],
)
def test_bad_kb_json_fields(kb_dir: Path, change: dict, pattern: str) -> None:
    meta = json.loads((kb_dir / store.KB_JSON).read_text())
    meta.update(change)
    (kb_dir / store.KB_JSON).write_text(json.dumps(meta))
    with pytest.raises(KnowledgeBaseError, match=r"kb\.json: " + pattern):
        read_kb(kb_dir)


def test_kb_json_missing_field_and_broken_json(kb_dir: Path) -> None:
    meta = json.loads((kb_dir / store.KB_JSON).read_text())
    del meta["metric"]
    (kb_dir / store.KB_JSON).write_text(json.dumps(meta))
    with pytest.raises(KnowledgeBaseError, match=r"kb\.json: missing field 'metric'"):
        read_kb(kb_dir)
    (kb_dir / store.KB_JSON).write_text("{not json")
    with pytest.raises(KnowledgeBaseError, match=r"kb\.json: not valid JSON"):
        read_kb(kb_dir)


def test_ids_that_look_like_missing_values_stay_ids(tmp_path: Path) -> None:
    """`nan` and `none` are valid slugs; the reader must not turn them into NaN."""
    kb = small_kb()
    renamed = KnowledgeBase(
        edges=kb.edges.replace({"d1": "nan", "d2": "none"}),
        metric=kb.metric,
        higher_is_better=False,
        model_features=kb.model_features,
        dataset_features=kb.dataset_features.rename(index={"d1": "nan", "d2": "none"}),
        dataset_distances=kb.dataset_distances.replace({"d1": "nan", "d2": "none"}),
    )
    loaded = read_kb(write_kb(renamed, tmp_path / "kb"))
    assert loaded.datasets == ["nan", "none", "d3"]
    assert set(loaded.edges["dataset"]) == {"nan", "none"}


def test_invalid_kb_is_refused_and_old_kb_kept(kb_dir: Path, snapshot) -> None:
    before = snapshot(kb_dir)
    kb = small_kb()
    bad = replace(kb, edges=kb.edges.assign(score=[1.0, math.inf, 2.0, 3.0, 4.0]))
    with pytest.raises(KnowledgeBaseError, match=r"refusing to write.*kb/edges\.csv row 2"):
        write_kb(bad, kb_dir)
    assert snapshot(kb_dir) == before
    assert sorted(p.name for p in kb_dir.parent.iterdir()) == ["kb"]


def test_failure_midway_leaves_old_kb_intact(kb_dir: Path, monkeypatch, snapshot) -> None:
    before = snapshot(kb_dir)
    calls = {"n": 0}
    real_to_csv = pd.DataFrame.to_csv

    def failing_to_csv(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_to_csv(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    replacement = small_kb()
    with pytest.raises(OSError, match="disk full"):
        write_kb(replacement, kb_dir)
    assert calls["n"] == 3
    assert snapshot(kb_dir) == before
    assert sorted(p.name for p in kb_dir.parent.iterdir()) == ["kb"]


def test_failed_rename_restores_old_kb(kb_dir: Path, monkeypatch, snapshot) -> None:
    before = snapshot(kb_dir)
    real_rename = os.rename

    def rename(src, dst):
        if ".writing-" in str(src):
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        write_kb(small_kb(), kb_dir)
    assert snapshot(kb_dir) == before
    assert sorted(p.name for p in kb_dir.parent.iterdir()) == ["kb"]


def test_overwrite_replaces_existing_kb(kb_dir: Path) -> None:
    kb = small_kb()
    changed = KnowledgeBase(
        edges=kb.edges.assign(score=kb.edges["score"] + 1),
        metric="other_metric",
        higher_is_better=True,
        model_features=kb.model_features,
        dataset_features=kb.dataset_features,
        dataset_distances=kb.dataset_distances,
    )
    write_kb(changed, kb_dir)
    loaded = read_kb(kb_dir)
    assert loaded.metric == "other_metric"
    np.testing.assert_allclose(loaded.edges["score"], kb.edges["score"] + 1)
    assert not (kb_dir / store.IDS_CSV).exists()
    assert sorted(p.name for p in kb_dir.parent.iterdir()) == ["kb"]


def test_refuses_to_replace_a_folder_that_is_not_a_kb(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.png").write_bytes(b"not really")
    with pytest.raises(KnowledgeBaseError, match="is not empty and holds no kb.json"):
        write_kb(small_kb(), foreign)
    assert (foreign / "cat.png").read_bytes() == b"not really"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_kb(write_kb(small_kb(), empty)).metric == "clip_fid"


def test_files_kept_beside_a_kb_are_never_deleted(kb_dir: Path, snapshot) -> None:
    (kb_dir / "NOTES.md").write_text("my notes")
    (kb_dir / "results").mkdir()
    (kb_dir / "results" / "eval.json").write_text("{}")
    before = snapshot(kb_dir)
    with pytest.raises(KnowledgeBaseError, match=r"holds NOTES\.md, results/"):
        write_kb(small_kb(), kb_dir)
    assert snapshot(kb_dir) == before


def test_a_kb_json_alone_does_not_make_a_folder_replaceable(tmp_path: Path) -> None:
    only_manifest_name = tmp_path / "other"
    only_manifest_name.mkdir()
    (only_manifest_name / "kb.json").write_text('{"something": "else"}')
    with pytest.raises(KnowledgeBaseError, match="not a knowledge-base manifest"):
        write_kb(small_kb(), only_manifest_name)
    assert (only_manifest_name / "kb.json").read_text() == '{"something": "else"}'
    (only_manifest_name / "important.csv").write_text("data")
    with pytest.raises(KnowledgeBaseError, match="holds important.csv"):
        write_kb(small_kb(), only_manifest_name)
    assert (only_manifest_name / "important.csv").read_text() == "data"


def test_out_as_a_link_to_a_kb_leaves_no_litter(kb_dir: Path, tmp_path: Path, snapshot) -> None:
    link = tmp_path / "link"
    link.symlink_to(kb_dir, target_is_directory=True)
    before = snapshot(kb_dir)
    write_kb(small_kb(), link)
    assert read_kb(link).metric == "clip_fid" and not link.is_symlink()
    assert snapshot(kb_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["kb", "link"])


def test_out_under_a_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    with pytest.raises(KnowledgeBaseError, match=rf"{blocker} is a file, not a folder"):
        write_kb(small_kb(), blocker / "sub" / "kb")
    assert blocker.read_text() == "keep"


def test_non_json_extra_is_refused(tmp_path: Path) -> None:
    kb = small_kb()
    odd = replace(kb, extra={"when": object()})
    with pytest.raises(KnowledgeBaseError, match="not JSON-serialisable"):
        write_kb(odd, tmp_path / "kb")
    assert not (tmp_path / "kb").exists()
    assert list(tmp_path.iterdir()) == []
