"""`mnc zoo features`: the JSON document and errors, on the tiny zoo."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.t2i.model_features import compute_model_features


def test_features_json_structure(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "features.json"
    args = ["zoo", "features", "--json", str(out), "--cache-dir", str(tmp_path / "cache")]
    for model_id in ("tiny-sd", "tiny-sd3"):
        args += ["--model-dir", str(tiny_zoo[model_id])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tiny-sd3" in result.output

    document = json.loads(out.read_text())
    assert list(document) == ["tiny-sd", "tiny-sd3"]
    expected = compute_model_features([tiny_zoo["tiny-sd"], tiny_zoo["tiny-sd3"]])
    for model_id, entry in document.items():
        assert set(entry) == {"params", "tflops", "features"}
        assert isinstance(entry["params"], int)
        assert entry["params"] == expected.params[model_id]
        assert math.isclose(entry["tflops"], expected.tflops[model_id])
        assert list(entry["features"]) == list(expected.table.columns)
        assert all(math.isfinite(v) for v in entry["features"].values())
    assert document["tiny-sd"]["features"]["pipeline_class_StableDiffusionPipeline"] == 1.0
    assert document["tiny-sd3"]["features"]["pipeline_class_StableDiffusionPipeline"] == 0.0


def test_missing_component_is_reported_not_a_traceback(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "X"]})
    )
    result = CliRunner().invoke(
        app, ["zoo", "features", "--no-cache", "--model-dir", str(tiny_zoo["tiny-sd"]),
              "--model-dir", str(broken)]
    )
    assert result.exit_code == 2
    assert "unet/config.json: missing" in result.output


def test_unwritable_json_path_is_refused_before_counting(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = tmp_path / "cache"
    for out, reason in ((blocker / "features.json", "is not a folder"), (tmp_path, "is a folder")):
        result = CliRunner().invoke(
            app, ["zoo", "features", "--cache-dir", str(cache),
                  "--model-dir", str(tiny_zoo["tiny-sd"]), "--json", str(out)]
        )
        assert result.exit_code == 2
        assert f"error: {out}" in result.output and reason in result.output
        assert "Traceback" not in result.output
        assert not cache.exists(), "the features were counted before the path was checked"
    assert blocker.read_text() == "not a folder"
