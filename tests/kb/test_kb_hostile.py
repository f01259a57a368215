"""Hostile or damaged tables: NUL bytes, short and cut-off rows, non-ASCII digits, BOMs,
absurd values and colliding PARC ids are refused (naming file and row), never read as a
silently different value. One rule (mnc_core.textfiles, kb.csv_errors) serves the KB
reader and both importers, so each case is checked against all three."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mnc_core.kb import store
from mnc_core.kb.importers.common import ImportInputError
from mnc_core.kb.importers.parc import import_parc
from mnc_core.kb.importers.transfergraph import import_transfergraph
from mnc_core.kb.store import KnowledgeBaseError, read_kb, write_kb
from tests.kb.test_kb_importers import PARC_ROWS, RUNS, write_parc, write_transfergraph
from tests.kb.test_kb_store import small_kb


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return write_kb(small_kb(), tmp_path / "kb")


def _replace_line(file: Path, line: int, new: str) -> None:
    lines = file.read_bytes().split(b"\n")
    lines[line] = new.encode() if isinstance(new, str) else new
    file.write_bytes(b"\n".join(lines))


def _edges_line(kb_dir: Path, line: int) -> str:
    return (kb_dir / store.EDGES_CSV).read_text().split("\n")[line]


# ------------------------------------------------------------------ NUL bytes


def test_nul_in_a_score_is_refused_naming_file_and_line(kb_dir: Path) -> None:
    file = kb_dir / store.EDGES_CSV
    cells = _edges_line(kb_dir, 2).split(",")
    cells[2] = "30.77\0...46"
    _replace_line(file, 2, ",".join(cells))
    with pytest.raises(KnowledgeBaseError, match=r"edges\.csv: cannot parse as CSV \(line 3: NUL"):
        read_kb(kb_dir)


def test_nul_in_an_id_is_refused_not_cut(kb_dir: Path) -> None:
    file = kb_dir / store.MODEL_FEATURES_CSV
    line = file.read_text().split("\n")[1]
    _replace_line(file, 1, line.replace("m-a", "m-a\0junk", 1))
    with pytest.raises(KnowledgeBaseError, match=r"model_features\.csv: .*line 2: NUL byte"):
        read_kb(kb_dir)


def test_nul_in_importer_inputs_is_refused(tmp_path: Path) -> None:
    parc = write_parc(tmp_path / "all.csv")
    _replace_line(parc, 1, b"resnet50,imagenet,cifar10,90\0.5")
    with pytest.raises(ImportInputError, match=r"all\.csv: cannot read as CSV \(line 2: NUL"):
        import_parc(parc)
    tg = write_transfergraph(tmp_path / "tg")
    records = tg / "records.csv"
    _replace_line(records, 1, records.read_bytes().split(b"\n")[1].replace(b"Model-A", b"M\0x"))
    with pytest.raises(ImportInputError, match=r"records\.csv: .*line 2: NUL"):
        import_transfergraph(tg)


# ------------------------------------------------------------------ short and cut-off rows


def test_short_row_is_refused_naming_the_row(kb_dir: Path) -> None:
    file = kb_dir / store.EDGES_CSV
    cells = _edges_line(kb_dir, 3).split(",")
    _replace_line(file, 3, ",".join(cells[:3]))  # score_before and cost cut away
    with pytest.raises(KnowledgeBaseError, match=r"edges\.csv: cannot parse as CSV \(row 3 has 3 "
                                                 r"cells, the header 5\)"):
        read_kb(kb_dir)


def test_short_rows_in_importer_inputs_are_refused(tmp_path: Path) -> None:
    parc = write_parc(tmp_path / "all.csv")
    _replace_line(parc, 2, "resnet50,imagenet,cub200")
    with pytest.raises(ImportInputError, match=r"all\.csv: cannot read as CSV \(row 2 has 3 cells"):
        import_parc(parc)
    tg = write_transfergraph(tmp_path / "tg")
    targets = tg / "target_dataset_features.csv"
    _replace_line(targets, 2, "tweet_eval/irony,4600")
    with pytest.raises(ImportInputError, match=r"target_dataset_features\.csv: .*row 2 has 2"):
        import_transfergraph(tg)


def test_file_cut_mid_row_is_refused(tmp_path: Path) -> None:
    parc = write_parc(tmp_path / "all.csv")
    text = parc.read_text()
    parc.write_text(text[: text.rindex(",")])  # the last row loses its Oracle cell
    with pytest.raises(ImportInputError, match=r"all\.csv: .*row 6 has 3 cells.*cut off"):
        import_parc(parc)


def test_file_cut_mid_number_is_not_read_without_a_word(tmp_path: Path, caplog) -> None:
    parc = write_parc(tmp_path / "all.csv")
    parc.write_text(parc.read_text().rstrip("\n")[:-1])  # 70.0 -> 70.
    import_parc(parc)
    assert any("all.csv: the last line has no line end" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ numbers and BOMs


@pytest.mark.parametrize("digits", ["١٢.٥", "１２", "1_2"])
def test_non_ascii_digits_are_not_numbers(kb_dir: Path, tmp_path: Path, digits: str) -> None:
    table = pd.read_csv(kb_dir / store.EDGES_CSV, dtype=str, keep_default_na=False)
    table.loc[1, "score"] = digits
    table.to_csv(kb_dir / store.EDGES_CSV, index=False)
    with pytest.raises(KnowledgeBaseError, match=rf"edges\.csv row 2: column score value "
                                                 rf"'{digits}' is not a number"):
        read_kb(kb_dir)
    rows = [*PARC_ROWS[:2], ("alexnet", "cub200", "cifar10", digits)]
    with pytest.raises(ImportInputError, match=r"all\.csv row 3: column Oracle value"):
        import_parc(write_parc(tmp_path / "all.csv", rows))


def test_a_leading_bom_is_ignored_in_every_kb_file(kb_dir: Path) -> None:
    expected = read_kb(kb_dir)
    for name in store.KB_FILES:
        file = kb_dir / name
        if file.is_file():
            file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    loaded = read_kb(kb_dir)
    pd.testing.assert_frame_equal(loaded.edges, expected.edges)
    pd.testing.assert_frame_equal(loaded.model_features, expected.model_features)
    assert loaded.metric == expected.metric


def test_a_leading_bom_is_ignored_by_the_importers(tmp_path: Path) -> None:
    plain = import_parc(write_parc(tmp_path / "plain.csv")).kb
    parc = write_parc(tmp_path / "all.csv")
    parc.write_bytes(b"\xef\xbb\xbf" + parc.read_bytes())
    pd.testing.assert_frame_equal(import_parc(parc).kb.edges, plain.edges)


# ------------------------------------------------------------------ absurd values


@pytest.mark.parametrize(
    ("name", "column", "value", "pattern"),
    [
        (store.MODEL_FEATURES_CSV, "log_params", "1e308", r"model_features\.csv row 2: column "
         r"log_params value 1e\+308 is outside"),
        (store.DATASET_FEATURES_CSV, "f0", "-1e300", r"dataset_features\.csv row 2: .*outside"),
        (store.DISTANCES_CSV, "distance", "1e200", r"dataset_distances\.csv row 2: .*outside"),
        (store.EDGES_CSV, "score", "-3", r"edges\.csv row 2: column score value -3\.0 is neg"),
        (store.EDGES_CSV, "score", "2e4", r"edges\.csv row 2: column score value 20000 is outs"
         r"ide \[0, 10000\] \(the range of the KB's metric"),
        (store.EDGES_CSV, "score_before", "1e15", r"edges\.csv row 2: column score_before"),
    ],
)
def test_absurd_values_are_refused_at_load_time(
    kb_dir: Path, name: str, column: str, value: str, pattern: str
) -> None:
    table = pd.read_csv(kb_dir / name, dtype=str, keep_default_na=False)
    table.loc[1, column] = value
    table.to_csv(kb_dir / name, index=False)
    with pytest.raises(KnowledgeBaseError, match=pattern):
        read_kb(kb_dir)


def test_accuracy_is_checked_against_the_metric_scale(kb_dir: Path) -> None:
    meta = json.loads((kb_dir / store.KB_JSON).read_text())
    meta.update(metric="eval_accuracy", higher_is_better=True)
    (kb_dir / store.KB_JSON).write_text(json.dumps(meta))
    with pytest.raises(KnowledgeBaseError, match=r"edges\.csv row 1: column score value 12\.5 is "
                                                 r"outside \[0, 1\]"):
        read_kb(kb_dir)
    meta["metric"] = "oracle_accuracy"  # percent: 12.5 is fine, 891 is not
    (kb_dir / store.KB_JSON).write_text(json.dumps(meta))
    read_kb(kb_dir)
    table = pd.read_csv(kb_dir / store.EDGES_CSV, dtype=str, keep_default_na=False)
    table.loc[2, "score"] = "891"
    table.to_csv(kb_dir / store.EDGES_CSV, index=False)
    with pytest.raises(KnowledgeBaseError, match=r"row 3: column score value 891 is outside"):
        read_kb(kb_dir)


def test_importers_refuse_absurd_accuracies_naming_the_input_row(tmp_path: Path) -> None:
    rows = [*PARC_ROWS[:2], ("alexnet", "cub200", "cifar10", 891.0)]
    with pytest.raises(ImportInputError, match=r"all\.csv row 3: column Oracle value 891\.0 is "
                                               r"not within \[0, 100\]"):
        import_parc(write_parc(tmp_path / "all.csv", rows))
    runs = [*RUNS[:2], ("Org/Model-A", "glue/cola", 8.91, "", 10.0), *RUNS[2:]]
    with pytest.raises(ImportInputError, match=r"records\.csv row 3: column eval_accuracy value "
                                               r"8\.91 is not within \[0, 1\]"):
        import_transfergraph(write_transfergraph(tmp_path / "tg", runs))


# ------------------------------------------------------------------ PARC id collisions


def test_parc_pairs_that_join_to_one_name_are_an_error_naming_both(tmp_path: Path) -> None:
    rows = [
        ("resnet50--imagenet", "v2", "cifar10", 90.0),
        ("resnet50", "imagenet--v2", "cifar10", 40.0),  # would be averaged with the first
        ("alexnet", "cub200", "cifar10", 70.0),
    ]
    with pytest.raises(ImportInputError) as caught:
        import_parc(write_parc(tmp_path / "all.csv", rows))
    message = str(caught.value)
    assert "row 1 (Architecture 'resnet50--imagenet', Source Dataset 'v2')" in message
    assert "row 2 (Architecture 'resnet50', Source Dataset 'imagenet--v2')" in message
    assert "'resnet50--imagenet--v2'" in message and "\n" not in message
