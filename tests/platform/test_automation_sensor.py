"""The landing sensor against the real definitions: complete folders only, once per version,
bad folders reported without blocking the others (`build_sensor_context` with an instance)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

import definitions
from mnc_assets import automation
from mnc_assets.automation import READY_MARKER, content_digest, rank_new_dataset_job
from mnc_assets.partitions import DATASET
from mnc_core.t2i.synthetic_data import make_synthetic_dataset
from tests.platform.conftest import tiny_env

SENSOR = "dataset_landing_sensor"


class Tick:
    """One sensor evaluation: its result, the warnings it logged, the cursor it left."""

    def __init__(self, result: dg.SensorResult, warnings: list[str]):
        self.result, self.warnings = result, warnings
        self.requests = list(result.run_requests or [])
        self.cursor = result.cursor

    @property
    def partitions(self) -> list[str]:
        return [k for r in self.result.dynamic_partitions_requests or [] for k in r.partition_keys]


class Landing:
    """A real platform's landing folder, its definitions, an instance, and the sensor's ticks."""

    def __init__(self, root: Path, instance: dg.DagsterInstance):
        self.root, self.instance = root, instance
        self.defs = definitions.build_defs(tiny_env(root))
        self.folder = Path(self.defs.resources["dataset_store"].landing)
        self.cursor: str | None = None

    def tick(self) -> Tick:
        """Evaluate the sensor and apply its partition requests, as the daemon does."""
        sensor = self.defs.resolve_sensor_def(SENSOR)
        warnings: list[str] = []
        handler = _ListHandler(warnings)
        with dg.build_sensor_context(instance=self.instance, definitions=self.defs,
                                     instance_ref=self.instance.get_ref(),
                                     resources=self.defs.resources,  # as the code server does
                                     cursor=self.cursor) as context:
            context.log.addHandler(handler)
            result = sensor(context)
        tick = Tick(result, warnings)
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name,
                                                 list(request.partition_keys))
        self.cursor = tick.cursor
        return tick

    def land(self, name: str, family: str = "shapes", n_images: int = 10, seed: int = 0,
             marker: bool = True) -> Path:
        """A complete dataset folder (built beside the landing folder, then moved in)."""
        source = make_synthetic_dataset(self.root / "incoming" / name, family, n_images=n_images,
                                        seed=seed, size=32)
        target = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        if marker:
            _write_marker(target)
        return target


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _write_marker(folder: Path) -> None:
    time.sleep(0.01)  # strictly newer than the files written just before
    (folder / READY_MARKER).touch()


@pytest.fixture
def landing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield Landing(tmp_path / "root", instance)


def test_a_complete_folder_gets_its_partition_and_its_run_in_one_tick(landing):
    folder = landing.land("pets")
    tick = landing.tick()
    assert tick.partitions == ["pets"]
    (request,) = tick.requests
    assert request.job_name == rank_new_dataset_job.name == "rank_new_dataset_job"
    assert request.partition_key == "pets"
    assert request.run_key == f"pets:{content_digest(folder)}"
    assert landing.instance.has_dynamic_partition(DATASET, "pets")
    # the request resolves against the real job once the partition exists
    job = landing.defs.resolve_job_def(request.job_name)
    keys = job.partitions_def.get_partition_keys(dynamic_partitions_store=landing.instance)
    assert "pets" in keys


def test_a_half_copied_folder_is_never_picked_up(landing):
    source = make_synthetic_dataset(landing.root / "src", "shapes", n_images=10, seed=0, size=32)
    target = landing.folder / "pets"
    target.mkdir(parents=True)
    files = sorted(source.iterdir())
    for batch in (files[:3], files[3:7]):  # the copy goes on between ticks
        for f in batch:
            shutil.copy2(f, target / f.name)
        tick = landing.tick()
        assert tick.requests == [] and tick.partitions == []
        assert "pets: incomplete" in tick.result.skip_reason.skip_message
    # a marker left from an earlier landing, older than files copied after it, does not count
    (target / READY_MARKER).touch()
    time.sleep(0.01)
    for f in files[7:]:
        shutil.copy2(f, target / f.name)
    assert landing.tick().requests == []
    assert not landing.instance.has_dynamic_partition(DATASET, "pets")


def test_a_folder_without_marker_is_picked_up_once_its_listing_is_stable(landing):
    folder = landing.land("pets", marker=False)
    assert landing.tick().requests == []
    (request,) = landing.tick().requests  # same listing as the tick before: complete
    assert request.run_key == f"pets:{content_digest(folder)}"


def test_an_unchanged_folder_is_not_requested_again_nor_rehashed(landing, monkeypatch):
    folder = landing.land("pets")
    assert len(landing.tick().requests) == 1
    hashed = []
    real = automation.content_digest
    monkeypatch.setattr(automation, "content_digest", lambda f: hashed.append(f) or real(f))
    for _ in range(2):
        tick = landing.tick()
        assert tick.requests == [] and tick.partitions == []
    assert hashed == []  # same listing signature: the cached digest is used
    # the same bytes copied in again (new times): hashed, same digest, nothing requested
    for f in list(folder.iterdir()):
        f.write_bytes(f.read_bytes())
    _write_marker(folder)
    assert landing.tick().requests == [] and len(hashed) == 1


def test_changed_content_is_requested_again_with_a_new_run_key(landing):
    folder = landing.land("pets")
    (first,) = landing.tick().requests
    image = folder / "img_00000.png"
    other = make_synthetic_dataset(landing.root / "other", "glyphs", n_images=1, seed=5, size=32)
    image.write_bytes((other / "img_00000.png").read_bytes())  # same name, other bytes
    _write_marker(folder)
    (second,) = landing.tick().requests
    assert second.partition_key == "pets" and second.run_key != first.run_key
    assert second.run_key == f"pets:{content_digest(folder)}"
    assert landing.tick().partitions == []  # the partition exists already


def test_an_invalid_folder_is_reported_and_the_valid_one_still_requested(landing):
    landing.land("good", seed=1)
    (landing.land("no-meta", seed=2) / "metadata.jsonl").unlink()
    landing.land("small", family="glyphs", n_images=3, seed=3)
    tick = landing.tick()
    assert [r.partition_key for r in tick.requests] == ["good"]
    assert tick.partitions == ["good"]
    reasons = "\n".join(tick.warnings)
    assert "'no-meta'" in reasons and "no metadata.jsonl" in reasons
    assert "'small'" in reasons and "only 3 captioned images in metadata.jsonl (at least 8" \
        in reasons
    assert not landing.instance.has_dynamic_partition(DATASET, "small")
    again = landing.tick()  # reported once per version, still not requested
    assert again.requests == [] and again.warnings == []
    assert "small: invalid (only 3" in again.result.skip_reason.skip_message


def test_a_folder_name_that_is_not_a_slug_is_reported(landing):
    landing.land("My Pets")
    landing.land("pets", seed=1)
    tick = landing.tick()
    assert [r.partition_key for r in tick.requests] == ["pets"]
    assert any("'My Pets' is not a slug" in w for w in tick.warnings)
    assert landing.instance.get_dynamic_partitions(DATASET) == ["pets"]
    assert "My Pets: not a slug" in landing.tick().result.skip_reason.skip_message


def test_the_sensor_runs_by_default_and_targets_the_rank_job(landing):
    sensor = landing.defs.resolve_sensor_def(SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "rank_new_dataset_job"


def test_the_sensor_checks_use_the_dataset_module_names_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, pathlib, mnc_assets.automation as a; "
            "a.invalid_reason(pathlib.Path('.'), 8); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().splitlines()[-1] == "False"
