"""The kb area's commands: `demo-kb`, `import transfergraph`, `import parc`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from mnc_core.cli import kb_commands
from mnc_core.kb.store import read_kb


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """Only this area's commands, so the test does not depend on other areas' modules."""
    application = typer.Typer()
    kb_commands.register(application)
    return application


def test_demo_kb_writes_a_readable_kb(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo-kb", "--out", str(out), "--seed", "4", "--datasets", "9", "--models", "3"]
    )
    assert result.exit_code == 0, result.output
    kb = read_kb(out)
    assert (len(kb.models), len(kb.datasets), len(kb.edges)) == (3, 9, 27)
    assert "3 models, 9 datasets, 27 model-dataset edges" in result.output
    assert kb.extra["seed"] == 4


def test_demo_kb_uses_the_zoo_feature_table_by_default(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnc_core.kb.demo import ZOO_MODEL_IDS
    from mnc_core.t2i import model_features

    table = pd.DataFrame(
        {"params_log": [float(i) for i in range(10)], "is_unet": [1.0, 0.0] * 5},
        index=pd.Index(ZOO_MODEL_IDS, name="model"),
    )
    monkeypatch.setattr(model_features, "model_feature_table", lambda: table)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo-kb", "--out", str(out), "--datasets", "4"])
    assert result.exit_code == 0, result.output
    kb = read_kb(out)
    assert list(kb.model_features.columns) == ["params_log", "is_unet"]
    assert kb.model_features.loc["sd15", "params_log"] == table.loc["sd15", "params_log"]


def test_errors_print_one_line_and_exit_2(app: typer.Typer, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    result = CliRunner().invoke(app, ["demo-kb", "--out", str(blocker), "--no-zoo-features"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert blocker.read_text() == "keep me"


def test_import_parc_command(app: typer.Typer, tmp_path: Path) -> None:
    csv = tmp_path / "all.csv"
    pd.DataFrame(
        {
            "Architecture": ["resnet50", "resnet50", "alexnet"],
            "Source Dataset": ["imagenet", "imagenet", "imagenet"],
            "Target Dataset": ["cifar10", "cub200", "cifar10"],
            "Oracle": [90.0, -1.0, 70.0],
        }
    ).to_csv(csv, index=False)
    out = tmp_path / "kb"
    result = CliRunner().invoke(app, ["import", "parc", str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 models, 1 datasets, 2 model-dataset edges" in result.output
    assert "dropped 1 row(s): negative Oracle" in result.output
    assert read_kb(out).metric == "oracle_accuracy"


def test_import_transfergraph_command_and_bad_flag(app: typer.Typer, tmp_path: Path) -> None:
    folder = tmp_path / "tg"
    folder.mkdir()
    pd.DataFrame(
        {
            "model": ["org/a", "org/b", "org/a"],
            "finetuned_dataset": ["glue/cola", "glue/cola", "0.1"],
            "eval_accuracy": [0.7, 0.8, 0.9],
        }
    ).to_csv(folder / "records.csv", index=False)
    pd.DataFrame({"model": ["org/a"], "model_type": ["bert"]}).to_csv(
        folder / "model_config_dataset.csv", index=False
    )
    pd.DataFrame(
        {"finetune_dataset": ["glue/cola"], "size": [10], "number_of_classes": [2]}
    ).to_csv(folder / "target_dataset_features.csv", index=False)
    out = tmp_path / "kb"
    runner = CliRunner()
    result = runner.invoke(app, ["import", "transfergraph", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 models, 1 datasets, 2 model-dataset edges" in result.output
    assert "dropped 1 row(s): dataset label not in target_dataset_features.csv" in result.output
    before = sorted(p.name for p in out.iterdir())
    bad = runner.invoke(
        app, ["import", "transfergraph", str(folder), "--out", str(out), "--score", "test_accuracy"]
    )
    assert bad.exit_code == 2
    assert "records.csv: no score column 'test_accuracy'" in bad.output
    assert sorted(p.name for p in out.iterdir()) == before
    assert read_kb(out).metric == "eval_accuracy"
    pd.DataFrame(
        {
            "model": ["org/a", "org/b"],
            "target_dataset": ["glue/cola", "glue/cola"],
            "metric": ["TransferabilityMethod.LOG_ME", "TransferabilityMethod.REG_H_SCORE"],
            "score": [-0.25, 0.5],
        }
    ).to_csv(folder / "transferability_score_records.csv", index=False)
    with_logme = tmp_path / "kb-logme"
    result = runner.invoke(
        app,
        ["import", "transfergraph", str(folder), "--out", str(with_logme), "--score-before",
         "logme"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    before_scores = read_kb(with_logme).edges.set_index("model")["score_before"]
    assert before_scores["org--a"] == -0.25 and pd.isna(before_scores["org--b"])


def test_command_module_imports_no_heavy_libraries() -> None:
    code = (
        "import sys, mnc_core.cli.kb_commands; "
        "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
