"""Importers on small synthetic folders of the real layouts, and on the real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnc_core.ids import is_slug, slugify
from mnc_core.kb.importers.common import ImportInputError, slug_map
from mnc_core.kb.importers.parc import import_parc
from mnc_core.kb.importers.transfergraph import import_transfergraph
from mnc_core.kb.store import read_kb, write_kb

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"

# --------------------------------------------------------------------- TransferGraph layout

RUNS = [
    # model, finetuned_dataset, eval_accuracy, peft_method, train_runtime (s)
    ("Org/Model-A", "glue/cola", 0.80, "", 3600.0),
    ("Org/Model-A", "glue/cola", 0.70, "", 7200.0),  # repeated run: averaged
    ("Org/Model-A", "tweet_eval/irony", 0.60, "", 1800.0),
    ("Org/Model-A", "rotten_tomatoes", 0.90, "lora", 900.0),
    ("org/model-b", "glue/cola", 0.65, "", math.nan),
    ("org/model-b", "rotten_tomatoes", 0.85, "", 360.0),
    ("org/model-b", "rotten_tomatoes", 0.55, "lora", 360.0),
    ("Org/NoMeta", "tweet_eval/irony", 0.50, "", 720.0),
    ("Org/NoMeta", "0.1", 0.99, "", 10.0),  # junk dataset labels
    ("Org/NoMeta", "none", 0.99, "", 10.0),
    ("org/model-b", "lora", 0.99, "", 10.0),
    ("org/model-b", "tweet_eval/irony", 0.75, "lor", 10.0),  # unknown peft label
    ("Org/Model-A", "rotten_tomatoes", math.nan, "", 10.0),  # no score
]
CONFIG = pd.DataFrame(
    {
        "model": ["Org/Model-A", "org/model-b", "Other/Unused"],
        "architectures": ["BertForSequenceClassification", "RobertaForMaskedLM", "X"],
        "model_type": ["bert", "roberta", "x"],
        "number_of_parameters": [1.1e8, 1.2e9, 5.0e6],
        "memory_consumption": [4.4e8, 4.8e9, 2.0e7],
        "dataset": ["glue/qqp", None, "imdb"],
    }
)
TARGETS = pd.DataFrame(
    {
        "finetune_dataset": ["glue/cola", "tweet_eval/irony", "rotten_tomatoes", "ag_news"],
        "size": [8550, 4600, 10662, 127600],
        "number_of_classes": [2, 2, 2, 4],
    }
)
SIM_LABELS = ["glue/cola", "tweet_eval/irony", "rotten_tomatoes", "trec", "glue_cola"]
SIM = np.array(
    [
        [0.0, 20.0, 30.0, 5.0, 0.0],
        [22.0, 0.0, 15.0, 6.0, 99.0],  # asymmetric irony/cola: 20 vs 22 -> 21
        [30.0, 15.0, 0.0, 7.0, 98.0],
        [5.0, 6.0, 7.0, 0.0, 5.0],
        [0.0, 99.0, 98.0, 5.0, 0.0],  # alias row with other values: exact name must win
    ]
)


def write_transfergraph(folder: Path, runs=RUNS, similarity: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = pd.DataFrame(
        runs,
        columns=["model", "finetuned_dataset", "eval_accuracy", "peft_method", "train_runtime"],
    )
    records.insert(0, "Unnamed: 0", range(len(records)))
    records.to_csv(folder / "records.csv", index=True)
    CONFIG.to_csv(folder / "model_config_dataset.csv", index=True)
    TARGETS.to_csv(folder / "target_dataset_features.csv", index=False)
    if similarity:
        pd.DataFrame(SIM, index=SIM_LABELS, columns=SIM_LABELS).to_csv(
            folder / "corr_domain_similarity_test_gpt.csv"
        )
    return folder


@pytest.fixture
def tg_dir(tmp_path: Path) -> Path:
    return write_transfergraph(tmp_path / "tg")


def test_transfergraph_edges_ids_and_drops(tg_dir: Path) -> None:
    result = import_transfergraph(tg_dir)
    kb = result.kb
    a, b, nometa = slugify("Org/Model-A"), slugify("org/model-b"), slugify("Org/NoMeta")
    cola, irony, rotten = slugify("glue/cola"), slugify("tweet_eval/irony"), "rotten_tomatoes"
    assert kb.models == sorted([a, b, nometa])
    assert kb.datasets == sorted([cola, irony, rotten])
    assert all(is_slug(x) for x in kb.models + kb.datasets)
    scores = kb.edges.set_index(["model", "dataset"])
    assert len(kb.edges) == 5
    assert scores.loc[(a, cola), "score"] == pytest.approx(0.75)
    assert scores.loc[(a, cola), "cost"] == pytest.approx(1.5)  # (1 h + 2 h) / 2
    assert math.isnan(scores.loc[(b, cola), "cost"])
    assert scores.loc[(b, rotten), "score"] == pytest.approx(0.85)  # the lora run is not kept
    assert kb.edges["score_before"].isna().all()
    assert (kb.metric, kb.higher_is_better, kb.synthetic) == ("eval_accuracy", True, False)
    dropped = result.dropped
    junk = [k for k in dropped if k.startswith("dataset label not in")]
    assert len(junk) == 1 and dropped[junk[0]] == 3 and "0.1" in junk[0]
    assert dropped["unknown peft_method label ('lor')"] == 1
    assert "runs of the other fine-tuning method (kept: full)" not in dropped  # now aux edges
    assert dropped["run without a finite eval_accuracy"] == 1
    assert dropped["repeated runs of one (model, dataset) averaged into one edge"] == 1


def test_transfergraph_lora_runs(tg_dir: Path) -> None:
    kb = import_transfergraph(tg_dir, peft="lora").kb
    assert sorted(kb.edges["score"]) == [0.55, 0.9]
    assert kb.datasets == ["rotten_tomatoes"]


def test_transfergraph_id_map_maps_back(tg_dir: Path) -> None:
    kb = import_transfergraph(tg_dir).kb
    mapping = {(k, i): o for k, i, o in kb.id_map.itertuples(index=False)}
    assert mapping[("model", "org--model-a")] == "Org/Model-A"
    assert mapping[("dataset", "tweet_eval--irony")] == "tweet_eval/irony"
    assert len(mapping) == len(kb.models) + len(kb.datasets)


def test_transfergraph_model_features(tg_dir: Path) -> None:
    features = import_transfergraph(tg_dir).kb.model_features
    assert not features.isna().any().any()
    a, b, nometa = "org--model-a", "org--model-b", "org--nometa"
    assert features.loc[nometa, "metadata_missing"] == 1.0
    assert features.loc[[a, b], "metadata_missing"].tolist() == [0.0, 0.0]
    assert features.loc[a, "arch_bertforsequenceclassification"] == 1.0
    assert features.loc[b, "type_roberta"] == 1.0
    assert features.loc[a, "source_glue_qqp"] == 1.0 and features.loc[b, "source_missing"] == 1.0
    # Unused models' categories do not appear; numbers are log-scaled and standardised.
    assert "arch_x" not in features.columns
    params = features.loc[[a, b], "log_number_of_parameters"]
    assert params.mean() == pytest.approx(0.0) and params.std(ddof=0) == pytest.approx(1.0)
    assert features.loc[nometa, "log_number_of_parameters"] == 0.0
    assert features.loc[nometa, "log_number_of_parameters_missing"] == 1.0


def test_transfergraph_dataset_features_and_distances(tg_dir: Path) -> None:
    kb = import_transfergraph(tg_dir).kb
    sizes = kb.dataset_features["log_size"]
    expected = np.log1p([8550, 4600, 10662])
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(
        sizes.loc[["glue--cola", "tweet_eval--irony", "rotten_tomatoes"]], expected
    )
    dist = {frozenset((a, b)): d for a, b, d in kb.dataset_distances.itertuples(index=False)}
    assert len(dist) == 3  # trec is not in the KB, the glue_cola alias is not a dataset
    assert dist[frozenset(("glue--cola", "tweet_eval--irony"))] == pytest.approx(21.0)
    assert dist[frozenset(("glue--cola", "rotten_tomatoes"))] == pytest.approx(30.0)
    assert dist[frozenset(("tweet_eval--irony", "rotten_tomatoes"))] == pytest.approx(15.0)
    assert "corr_domain_similarity_test_gpt.csv" in kb.description


def test_transfergraph_alias_used_when_exact_label_absent(tmp_path: Path) -> None:
    folder = write_transfergraph(tmp_path / "tg", similarity=False)
    labels = ["glue_cola", "tweet_eval/irony", "rotten_tomatoes"]
    matrix = np.array([[0.0, 4.0, 8.0], [4.0, 0.0, 6.0], [8.0, 6.0, 0.0]])
    pd.DataFrame(matrix, index=labels, columns=labels).to_csv(
        folder / "corr_domain_similarity_a.csv"
    )
    kb = import_transfergraph(folder).kb
    dist = {frozenset((a, b)): d for a, b, d in kb.dataset_distances.itertuples(index=False)}
    assert dist[frozenset(("glue--cola", "tweet_eval--irony"))] == 4.0


def test_transfergraph_without_similarity_and_with_several(tmp_path: Path) -> None:
    folder = write_transfergraph(tmp_path / "tg", similarity=False)
    kb = import_transfergraph(folder).kb
    assert kb.dataset_distances.empty and "no dataset distances" in kb.description
    write_transfergraph(folder)
    labels = SIM_LABELS[:3]
    pd.DataFrame(SIM[:3, :3], index=labels, columns=labels).to_csv(
        folder / "corr_domain_similarity_other.csv"
    )
    with pytest.raises(ImportInputError, match="several similarity files"):
        import_transfergraph(folder)
    chosen = import_transfergraph(folder, similarity_file="corr_domain_similarity_other.csv").kb
    assert len(chosen.dataset_distances) == 3


def test_transfergraph_score_column_choice(tg_dir: Path) -> None:
    with pytest.raises(ImportInputError, match=r"records\.csv: no score column 'test_accuracy'"):
        import_transfergraph(tg_dir, score_column="test_accuracy")
    records = pd.read_csv(tg_dir / "records.csv")
    records["test_accuracy"] = records["eval_accuracy"] / 2
    records.to_csv(tg_dir / "records.csv", index=False)
    kb = import_transfergraph(tg_dir, score_column="test_accuracy").kb
    assert kb.metric == "test_accuracy"
    assert kb.edges["score"].max() == pytest.approx(0.85 / 2)  # best kept full run, halved


def _cell(table: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    """The table with one cell (0-based data row) replaced, as text where needed."""
    table = table.astype({column: object})
    table.loc[table.index[row], column] = value
    return table


@pytest.mark.parametrize(
    ("file", "row", "column", "value", "pattern"),
    [
        ("model_config_dataset.csv", 1, "number_of_parameters", "lots",
         r"model_config_dataset\.csv row 2: column number_of_parameters value 'lots' is not a "
         r"number"),
        ("model_config_dataset.csv", 1, "memory_consumption", "inf",
         r"model_config_dataset\.csv row 2: column memory_consumption .* not a finite number"),
        ("target_dataset_features.csv", 0, "size", "inf",
         r"target_dataset_features\.csv row 1: column size .* not a finite number > 0"),
        ("target_dataset_features.csv", 2, "size", -5,
         r"target_dataset_features\.csv row 3: column size value -5 is not a finite number > 0"),
        ("target_dataset_features.csv", 1, "number_of_classes", 0,
         r"target_dataset_features\.csv row 2: column number_of_classes value 0 is not a finite"),
    ],
)
def test_transfergraph_bad_feature_number_names_its_row(
    tg_dir: Path, file: str, row: int, column: str, value, pattern: str
) -> None:
    """One bad number in a feature column is an error, never a silently flattened or
    dropped column (features are standardised over the whole column)."""
    index_col = 0 if file.startswith("model_config") else None
    table = pd.read_csv(tg_dir / file, index_col=index_col)
    _cell(table, row, column, value).to_csv(tg_dir / file, index=index_col is not None)
    with pytest.raises(ImportInputError, match=pattern):
        import_transfergraph(tg_dir)


@pytest.mark.parametrize(
    ("file", "edit", "pattern"),
    [
        (
            "records.csv",
            lambda t: t.drop(columns="finetuned_dataset"),
            r"records\.csv: missing col",
        ),
        (
            "records.csv",
            lambda t: t.assign(eval_accuracy="high"),
            r"records\.csv row 1: column eval",
        ),
        (
            "target_dataset_features.csv",
            lambda t: t.drop(columns="size"),
            r"target_dataset_f.*size",
        ),
        (
            "model_config_dataset.csv",
            lambda t: t.drop(columns="model"),
            r"model_config_data.*model",
        ),
        (
            "corr_domain_similarity_test_gpt.csv",
            lambda t: t.iloc[:-1],
            r"corr_domain_similarity_test_gpt\.csv: not a square matrix",
        ),
        (
            "corr_domain_similarity_test_gpt.csv",
            lambda t: t.replace(15.0, -15.0),
            r"similarity_test_gpt\.csv row 2: negative distance -15\.0 \('tweet_eval/irony' vs",
        ),
    ],
)
def test_transfergraph_bad_input_names_the_file(
    tg_dir: Path, file: str, edit, pattern: str
) -> None:
    index_col = 0 if file.startswith("corr_") else None
    table = pd.read_csv(tg_dir / file, index_col=index_col)
    edit(table).to_csv(tg_dir / file, index=index_col is not None)
    with pytest.raises(ImportInputError, match=pattern):
        import_transfergraph(tg_dir)


def test_transfergraph_missing_file_and_folder(tg_dir: Path) -> None:
    (tg_dir / "records.csv").unlink()
    with pytest.raises(ImportInputError, match=r"records\.csv: file not found"):
        import_transfergraph(tg_dir)
    with pytest.raises(ImportInputError, match="TransferGraph folder not found"):
        import_transfergraph(tg_dir / "absent")


def test_transfergraph_nothing_left(tmp_path: Path) -> None:
    folder = write_transfergraph(tmp_path / "tg", runs=RUNS[8:11])
    with pytest.raises(ImportInputError, match="no run left after filtering"):
        import_transfergraph(folder)


def test_transfergraph_round_trip(tg_dir: Path, tmp_path: Path) -> None:
    kb = import_transfergraph(tg_dir).kb
    loaded = read_kb(write_kb(kb, tmp_path / "kb"))
    pd.testing.assert_frame_equal(loaded.edges, kb.edges)
    pd.testing.assert_frame_equal(loaded.model_features, kb.model_features)
    pd.testing.assert_frame_equal(loaded.id_map, kb.id_map)


def test_slug_collisions_get_distinct_ids() -> None:
    mapping = slug_map(["Org/Model", "org/model", "plain"])
    assert mapping["plain"] == "plain"
    assert mapping["Org/Model"] != mapping["org/model"]
    assert all(
        v.startswith("org--model-") and is_slug(v) for k, v in mapping.items() if k != "plain"
    )
    assert slug_map(["plain", "org/model", "Org/Model"]) == mapping


# --------------------------------------------------------------------- PARC

PARC_ROWS = [
    ("resnet50", "imagenet", "cifar10", 90.0),
    ("resnet50", "imagenet", "cub200", 60.0),
    ("resnet50", "imagenet", "cub200", 62.0),  # repeated: averaged
    ("resnet101", "mask-rcnn_fpn_138205316", "cifar10", 92.5),
    ("resnet101", "mask-rcnn_fpn_138205316", "cub200", -1.0),  # not run: dropped
    ("alexnet", "cub200", "cifar10", 70.0),
]


def write_parc(file: Path, rows=PARC_ROWS) -> Path:
    pd.DataFrame(
        rows, columns=["Architecture", "Source Dataset", "Target Dataset", "Oracle"]
    ).to_csv(file, index=False)
    return file


def test_parc_import(tmp_path: Path) -> None:
    result = import_parc(write_parc(tmp_path / "all.csv"))
    kb = result.kb
    assert kb.models == [
        "alexnet--cub200",
        "resnet101--mask-rcnn_fpn_138205316",
        "resnet50--imagenet",
    ]
    assert kb.datasets == ["cifar10", "cub200"]
    scores = kb.edges.set_index(["model", "dataset"])["score"]
    assert scores[("resnet50--imagenet", "cub200")] == pytest.approx(61.0)
    assert ("resnet101--mask-rcnn_fpn_138205316", "cub200") not in scores.index
    assert len(kb.edges) == 4
    assert kb.dataset_features.shape == (2, 0) and kb.dataset_distances.empty
    assert "no dataset features" in kb.description and "no dataset distances" in kb.description
    features = kb.model_features
    assert features.loc["alexnet--cub200", "arch_alexnet"] == 1.0
    assert features.loc["alexnet--cub200", "source_cub200"] == 1.0
    assert features.loc["resnet50--imagenet"].sum() == 2.0
    assert (kb.metric, kb.higher_is_better) == ("oracle_accuracy", True)
    assert result.dropped["negative Oracle (PARC marks runs not done with -1)"] == 1
    loaded = read_kb(write_kb(kb, tmp_path / "kb"))
    pd.testing.assert_frame_equal(loaded.edges, kb.edges)
    assert set(loaded.id_map["original"]) >= {"resnet50--imagenet", "cifar10"}


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        (
            [("resnet50", "imagenet", "cifar10", "n/a")],
            r"all\.csv row 1: column Oracle value 'n/a'",
        ),
        ([("resnet50", "imagenet", "cifar10", None)], r"all\.csv: no row with an Oracle"),
        (
            [("resnet50", "imagenet", "cifar10", 1.0), (None, "x", "y", 2.0)],
            r"all\.csv row 2: column 'Arc",
        ),
        ([("resnet50", "imagenet", "cifar10", -1.0)], r"all\.csv: no row with an Oracle accuracy"),
    ],
)
def test_parc_bad_rows(tmp_path: Path, rows: list, pattern: str) -> None:
    with pytest.raises(ImportInputError, match=pattern):
        import_parc(write_parc(tmp_path / "all.csv", rows))


def test_ragged_rows_are_one_line_naming_the_data_row(tg_dir: Path, tmp_path: Path) -> None:
    records = tg_dir / "records.csv"
    lines = records.read_text().splitlines()
    lines[3] += ",extra"  # data row 3
    records.write_text("\n".join(lines) + "\n")
    pattern = r"records\.csv: cannot read as CSV \(row 3 has"
    with pytest.raises(ImportInputError, match=pattern) as e:
        import_transfergraph(tg_dir)
    assert "\n" not in str(e.value)
    parc = write_parc(tmp_path / "all.csv")
    parc.write_text(parc.read_text() + "a,b,c,1,2\n")
    with pytest.raises(ImportInputError, match=r"all\.csv: cannot read as CSV \(row \d+ has 5"):
        import_parc(parc)


def test_parc_missing_column(tmp_path: Path) -> None:
    file = tmp_path / "all.csv"
    pd.DataFrame({"Architecture": ["a"], "Oracle": [1.0]}).to_csv(file, index=False)
    with pytest.raises(ImportInputError, match=r"all\.csv: missing column\(s\) Source Dataset"):
        import_parc(file)


# --------------------------------------------------------------------- real benchmark data


def _real(path: str) -> Path:
    target = BENCHMARKS / path
    if not target.exists():
        pytest.skip(f"benchmark data not found at {target} (see ../shared/benchmarks/README.md)")
    return target


@pytest.mark.benchmark_data
def test_real_transfergraph_text(tmp_path: Path) -> None:
    src = _real("transfergraph-text")
    result = import_transfergraph(src)
    kb = read_kb(write_kb(result.kb, tmp_path / "kb"))
    records = pd.read_csv(src / "records.csv")
    full = records[records["peft_method"].isna()]
    real_labels = set(pd.read_csv(src / "target_dataset_features.csv")["finetune_dataset"])
    expected_pairs = full[full["finetuned_dataset"].isin(real_labels)].dropna(
        subset=["model", "eval_accuracy"]
    )
    assert len(kb.edges) == len(expected_pairs.drop_duplicates(["model", "finetuned_dataset"]))
    assert len(kb.datasets) == expected_pairs["finetuned_dataset"].nunique()
    assert "glue_cola" not in kb.datasets and "glue--cola" in kb.datasets
    n = len(kb.datasets)
    assert len(kb.dataset_distances) == n * (n - 1) // 2
    assert not kb.model_features.isna().any().any()
    assert kb.edges["score"].between(0, 1).all()
    assert sum(v for k, v in result.dropped.items() if k.startswith("dataset label")) >= 3


@pytest.mark.benchmark_data
def test_real_parc(tmp_path: Path) -> None:
    file = _real("parc/all.csv")
    kb = read_kb(write_kb(import_parc(file).kb, tmp_path / "kb"))
    table = pd.read_csv(file)
    kept = table[table["Oracle"] >= 0]
    assert len(kb.edges) == len(kept)
    assert len(kb.datasets) == kept["Target Dataset"].nunique()
    assert len(kb.models) == len(kept.drop_duplicates(["Architecture", "Source Dataset"]))


# ------------------------------------------------------------ TransferGraph score before (LogME)

PROXIES = [
    # model, target_dataset, metric, score
    ("Org/Model-A", "glue/cola", "TransferabilityMethod.LOG_ME", -0.4),
    ("Org/Model-A", "glue/cola", "TransferabilityMethod.LOG_ME", -0.2),  # repeated: averaged
    ("Org/Model-A", "glue/cola", "TransferabilityMethod.REG_H_SCORE", 0.7),
    ("org/model-b", "glue_cola", "TransferabilityMethod.LOG_ME", -0.5),  # alias label
    ("org/model-b", "tweet_eval/irony", "TransferabilityMethod.LOG_ME", 0.1),  # no kept run
    ("Org/NoMeta", "0.1", "TransferabilityMethod.LOG_ME", 0.3),  # junk dataset label
    ("Org/NoMeta", "tweet_eval/irony", "TransferabilityMethod.LOG_ME", math.nan),
]


def write_proxies(folder: Path, rows=PROXIES) -> None:
    pd.DataFrame(rows, columns=["model", "target_dataset", "metric", "score"]).to_csv(
        folder / "transferability_score_records.csv"
    )


def _before(kb) -> dict:
    known = kb.edges.dropna(subset=["score_before"])
    return {
        (m, d): round(s, 6)
        for m, d, s in known[["model", "dataset", "score_before"]].itertuples(
            index=False, name=None
        )
    }


def test_transfergraph_score_before_logme(tg_dir: Path) -> None:
    write_proxies(tg_dir)
    plain = import_transfergraph(tg_dir).kb
    assert plain.edges["score_before"].isna().all()
    result = import_transfergraph(tg_dir, score_before="logme")
    a, b = slugify("Org/Model-A"), slugify("org/model-b")
    cola = slugify("glue/cola")
    assert _before(result.kb) == {(a, cola): -0.3, (b, cola): -0.5}
    pd.testing.assert_frame_equal(
        plain.edges.drop(columns="score_before"), result.kb.edges.drop(columns="score_before")
    )
    assert any("without a known dataset" in k for k in result.dropped)
    assert any("without a kept fine-tuning run" in k for k in result.dropped)
    assert result.kb.extra["score_before"] == "logme"
    other = import_transfergraph(tg_dir, score_before="reg-h-score").kb
    assert _before(other) == {(a, cola): 0.7}


def test_transfergraph_score_before_errors(tg_dir: Path) -> None:
    with pytest.raises(ImportInputError, match="score_before must be one of"):
        import_transfergraph(tg_dir, score_before="leep")
    with pytest.raises(ImportInputError, match="transferability_score_records.csv"):
        import_transfergraph(tg_dir, score_before="logme")
    write_proxies(tg_dir, [("Org/Model-A", "glue/cola", "TransferabilityMethod.LOG_ME", "x")])
    with pytest.raises(ImportInputError, match="transferability_score_records.csv"):
        import_transfergraph(tg_dir, score_before="logme")


def test_transfergraph_bad_score_names_its_row_in_the_file(tg_dir: Path) -> None:
    records = pd.read_csv(tg_dir / "records.csv")
    full = records["peft_method"].isna() & records["finetuned_dataset"].isin(
        set(TARGETS["finetune_dataset"])
    )
    bad = int(records.index[full][-1])  # rows before it are filtered out (LoRA, junk labels)
    assert bad > int(full.sum())
    records["eval_accuracy"] = records["eval_accuracy"].astype(object)
    records.loc[bad, "eval_accuracy"] = "high"
    records.to_csv(tg_dir / "records.csv", index=False)
    with pytest.raises(ImportInputError, match=rf"records\.csv row {bad + 1}: column eval"):
        import_transfergraph(tg_dir)


# --------------------------------------------------------------------- unusable input values


def test_transfergraph_name_without_slug_names_file_column_and_row(tg_dir: Path) -> None:
    folder = write_transfergraph(
        tg_dir.parent / "bad_model", runs=[*RUNS, ("???", "glue/cola", 0.5, "", 1.0)]
    )
    with pytest.raises(
        ImportInputError, match=rf"records\.csv row {len(RUNS) + 1}: column model value '\?\?\?'"
    ):
        import_transfergraph(folder)
    targets = pd.concat(
        [
            TARGETS,
            pd.DataFrame({"finetune_dataset": ["?!"], "size": [10], "number_of_classes": [2]}),
        ]
    )
    write_transfergraph(tg_dir, runs=[*RUNS, ("Org/Model-A", "?!", 0.5, "", 1.0)])
    targets.to_csv(tg_dir / "target_dataset_features.csv", index=False)
    with pytest.raises(
        ImportInputError,
        match=r"target_dataset_features\.csv row 5: column finetune_dataset value '\?!'",
    ):
        import_transfergraph(tg_dir)


def test_parc_name_without_slug_names_file_column_and_row(tmp_path: Path) -> None:
    rows = [*PARC_ROWS, ("alexnet", "cub200", "???", 50.0)]
    with pytest.raises(
        ImportInputError, match=rf"all\.csv row {len(rows)}: column Target Dataset value '\?\?\?'"
    ):
        import_parc(write_parc(tmp_path / "all.csv", rows))
    rows = [*PARC_ROWS[:4], ("???", "!!!", "cifar10", 50.0)]
    with pytest.raises(ImportInputError, match=r"all\.csv row 5: column Architecture \+ Source"):
        import_parc(write_parc(tmp_path / "all.csv", rows))


@pytest.mark.parametrize("values", [(math.inf, -math.inf, None), ("nan", "NaN", None)])
def test_parc_non_finite_oracle_is_dropped_like_a_missing_one(
    tmp_path: Path, values: tuple
) -> None:
    extra = [("alexnet", "cub200", "cub200", v) for v in values]
    result = import_parc(write_parc(tmp_path / "all.csv", [*PARC_ROWS, *extra]))
    assert result.dropped["no finite Oracle value"] == 3
    assert result.dropped["negative Oracle (PARC marks runs not done with -1)"] == 1
    assert len(result.kb.edges) == 4 and np.isfinite(result.kb.edges["score"]).all()
    write_kb(result.kb, tmp_path / "kb")  # was refused: an infinite score in edges.csv


def test_transfergraph_infinite_runtime_leaves_the_cost_unknown(tmp_path: Path) -> None:
    runs = [*RUNS, ("Org/NoMeta", "rotten_tomatoes", 0.4, "", math.inf)]
    runs.append(("Org/NoMeta", "glue/cola", 0.4, "", -5.0))
    result = import_transfergraph(write_transfergraph(tmp_path / "tg", runs=runs))
    edges = result.kb.edges.set_index(["model", "dataset"])
    nometa = slugify("Org/NoMeta")
    assert math.isnan(edges.loc[(nometa, "rotten_tomatoes"), "cost"])
    assert edges.loc[(nometa, "rotten_tomatoes"), "score"] == pytest.approx(0.4)
    assert math.isnan(edges.loc[(nometa, slugify("glue/cola")), "cost"])
    assert result.dropped["negative or infinite train_runtime ignored (cost left unknown)"] == 2
    write_kb(result.kb, tmp_path / "kb")  # was refused: an infinite cost in edges.csv


def test_transfergraph_nan_text_score_is_dropped_and_counted(tmp_path: Path) -> None:
    nan_runs = [("Org/NoMeta", "glue/cola", text, "", 1.0) for text in ("nan", "NaN", "inf")]
    folder = write_transfergraph(tmp_path / "tg", runs=[*RUNS, *nan_runs])
    result = import_transfergraph(folder)
    assert result.dropped["run without a finite eval_accuracy"] == 4  # 3 + the empty cell
    assert (slugify("Org/NoMeta"), slugify("glue/cola")) not in set(
        result.kb.edges[["model", "dataset"]].itertuples(index=False, name=None)
    )
    abc = [*RUNS, *nan_runs, ("Org/NoMeta", "glue/cola", "abc", "", 1.0)]
    write_transfergraph(folder, runs=abc)
    with pytest.raises(
        ImportInputError, match=rf"records\.csv row {len(abc)}: column eval_accuracy value 'abc'"
    ):
        import_transfergraph(folder)


def test_transfergraph_nan_text_transferability_score_is_dropped(tg_dir: Path) -> None:
    write_proxies(
        tg_dir, [*PROXIES[:-1], ("Org/NoMeta", "tweet_eval/irony", PROXIES[-1][2], "NaN")]
    )
    result = import_transfergraph(tg_dir, score_before="logme")
    assert _before(result.kb) == {
        (slugify("Org/Model-A"), slugify("glue/cola")): -0.3,
        (slugify("org/model-b"), slugify("glue/cola")): -0.5,
    }
    reason = (
        "transferability_score_records.csv: logme row without a known dataset or a finite score"
    )
    assert result.dropped[reason] == 2  # the junk label and the NaN score
