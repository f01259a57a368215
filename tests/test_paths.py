from pathlib import Path

import pytest

from mnc_core.ids import InvalidIdError
from mnc_core.paths import DataLayout


def test_layout_places_pair_artifacts_under_model_then_dataset(tmp_path: Path):
    layout = DataLayout(tmp_path)
    assert layout.lora_dir("sd15", "anime-01") == tmp_path / "lora" / "sd15" / "anime-01"
    assert layout.samples_dir("sd15", "anime-01", "base").parts[-4:] == (
        "samples", "sd15", "anime-01", "base",
    )


@pytest.mark.parametrize("bad", ["../etc", "a/b", "A"])
def test_layout_refuses_ids_that_escape_the_root(tmp_path: Path, bad: str):
    with pytest.raises(InvalidIdError):
        DataLayout(tmp_path).cache_dir(bad, "ok")


def test_unknown_sample_variant_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="variant"):
        DataLayout(tmp_path).samples_dir("m", "d", "other")


def test_the_calibration_lives_beside_the_engine_artifacts(tmp_path: Path):
    layout = DataLayout(tmp_path)
    assert layout.calibration_path() == layout.engine_dir() / "near_best_calibration.json"
    assert layout.calibration_path().parent == tmp_path / "engine"
