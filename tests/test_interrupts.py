"""SIGINT / SIGTERM sent to real `mnc` processes at chosen moments: the process and all its
workers end within seconds, one line says it was interrupted, no staging folder and no
half-written output is left (the previous version survives), and a re-run works.

The moments: `evaluate` while its ranker fits run in worker processes (no pause, real
timing); `rank` during its fit; `demo-kb` and `import parc` with the new KB staged but not
yet swapped in; LoRA training while a checkpoint is staged; CLIP embedding while its
cache is staged. The paused ones use tests/interrupt_driver.py, which replaces one
function by a sleep so the signal lands exactly there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mnc_core.cli.common import INTERRUPTED_MESSAGE
from mnc_core.kb.demo import make_demo_kb
from mnc_core.kb.store import read_kb, write_kb

psutil = pytest.importorskip("psutil", reason="psutil (a dagster dependency) lists child processes")

DRIVER = Path(__file__).with_name("interrupt_driver.py")
ENV = {**os.environ, "NUMBA_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
STOP_WITHIN_S = 15  # the CLI's 5 s grace, plus slack for a loaded machine
START_WITHIN_S = 240  # imports (torch) on a busy 2-core machine


@dataclass
class Job:
    """A driver process, every descendant it was seen with, and its stderr."""

    popen: subprocess.Popen
    stderr: Path
    ready: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def watch(self) -> None:
        try:
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def workers(self) -> list[psutil.Process]:
        def is_worker(p: psutil.Process) -> bool:
            try:
                return "spawn_main" in " ".join(p.cmdline())
            except psutil.Error:
                return False

        return [p for p in self.seen.values() if is_worker(p)]

    def wait_until(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_WITHIN_S
        while not condition():
            self.watch()
            if self.popen.poll() is not None:
                pytest.fail(f"ended before {what}: {self.stderr.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.popen.kill()
                pytest.fail(f"no {what} within {START_WITHIN_S} s")
            time.sleep(0.1)
        self.watch()

    def stop(self, signum: int, *, group: bool = False, twice: bool = False) -> float:
        """Send `signum` (to the whole process group: a terminal's Ctrl-C); seconds to exit."""
        send = (lambda: os.killpg(self.popen.pid, signum)) if group else (
            lambda: self.popen.send_signal(signum))
        started = time.monotonic()
        send()
        if twice:
            time.sleep(0.3)
            send()
        try:
            self.popen.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            pytest.fail(f"still running {STOP_WITHIN_S} s after {signal.Signals(signum).name}")
        return time.monotonic() - started


def start(tmp_path: Path, mode: str, *args: object, pause: str = "-") -> Job:
    """Run the driver (`mode` and `args` as in tests/interrupt_driver.py) in its own group."""
    stderr = tmp_path / f"stderr-{time.monotonic_ns()}.txt"
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    command = [sys.executable, str(DRIVER), str(ready), pause, mode, *map(str, args)]
    with stderr.open("w") as err:
        popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=ENV,
                                 start_new_session=True)
    return Job(popen, stderr, ready)


def run(tmp_path: Path, mode: str, *args: object) -> None:
    """Run the driver to completion (the re-run after an interrupt)."""
    job = start(tmp_path, mode, *args)
    assert job.popen.wait(START_WITHIN_S) == 0, job.stderr.read_text()[-2000:]


def leftovers(*roots: Path) -> list[str]:
    """Staging or old-version folders/files of the one staging rule under `roots`."""
    return sorted(str(p) for root in roots if root.exists() for p in root.rglob(".*")
                  if ".writing-" in p.name or ".old-" in p.name)


def assert_interrupted(job: Job, signum: int, *, twice: bool = False) -> None:
    """Exit status 128 + signal, one 'interrupted' line, no traceback, no process left."""
    # A repeat arriving while the interpreter exits may end it by the signal itself,
    # which a shell reports as the same 128 + signal.
    allowed = {EXIT_STATUS[signum], -signum} if twice else {EXIT_STATUS[signum]}
    text = job.stderr.read_text()
    assert job.popen.returncode in allowed, text[-2000:]
    lines = [line for line in text.splitlines() if "interrupted" in line]
    message = INTERRUPTED_MESSAGE.format(signal=signal.Signals(signum).name)
    # (a progress bar left open by the interrupt may stand before it on the same line)
    assert len(lines) == 1 and lines[0].endswith(message), text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    assert_no_process_left(job)


def assert_no_process_left(job: Job) -> None:
    deadline = time.monotonic() + 5
    while True:
        alive = [p.pid for p in job.seen.values() if p.is_running()
                 and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert alive == [], f"processes left behind: {alive}"


@pytest.fixture
def small_kb_dir(tmp_path: Path) -> Path:
    """8 datasets x 4 models: 24 ranker fits, enough for evaluate to use worker processes."""
    return write_kb(make_demo_kb(seed=0, n_datasets=8, n_models=4), tmp_path / "kb")


@pytest.mark.parametrize(
    ("signum", "group", "twice"),
    [(signal.SIGTERM, False, False), (signal.SIGINT, True, True)],
    ids=["sigterm", "double-ctrl-c"],
)
def test_evaluate_stops_with_its_fit_workers(
    tmp_path: Path, small_kb_dir: Path, snapshot, signum: int, group: bool, twice: bool
) -> None:
    report = tmp_path / "reports" / "eval.json"
    report.parent.mkdir()
    report.write_text('{"previous": true}\n')
    kb_before = snapshot(small_kb_dir)
    job = start(tmp_path, "cli", "evaluate", "--kb", small_kb_dir, "--walks", "1",
                "--iterations", "400", "--json", report)
    job.wait_until(lambda: len(job.workers()) >= 2, "ranker fit workers")
    time.sleep(1.0)
    job.watch()
    assert job.stop(signum, group=group, twice=twice) < STOP_WITHIN_S
    assert_interrupted(job, signum, twice=twice)
    assert json.loads(report.read_text()) == {"previous": True}
    assert leftovers(report.parent, small_kb_dir.parent) == []
    assert snapshot(small_kb_dir) == kb_before


def test_rank_stops_during_its_fit(tmp_path: Path, small_kb_dir: Path) -> None:
    report = tmp_path / "rank.json"
    dataset = read_kb(small_kb_dir).datasets[0]
    job = start(tmp_path, "cli", "rank", "--kb", small_kb_dir, "--dataset", dataset,
                "--json", report, pause="mnc_core.engine.predict:_fitted")
    job.wait_until(job.ready.exists, "the fit")
    job.stop(signal.SIGTERM)
    assert_interrupted(job, signal.SIGTERM)
    assert not report.exists() and leftovers(tmp_path) == []


def _parc_csv(folder: Path) -> Path:
    csv = folder / "all.csv"
    csv.write_text("Architecture,Source Dataset,Target Dataset,Oracle\n"
                   "resnet50,imagenet,cifar10,90.0\nalexnet,imagenet,cifar10,70.0\n"
                   "resnet50,imagenet,cub200,60.0\nalexnet,imagenet,cub200,50.0\n")
    return csv


@pytest.mark.parametrize(("command", "signum"), [("demo-kb", signal.SIGTERM),
                                                 ("import-parc", signal.SIGINT)],
                         ids=["demo-kb-sigterm", "import-parc-sigint"])
def test_kb_writers_stop_with_the_previous_kb_intact(
    tmp_path: Path, snapshot, command: str, signum: int
) -> None:
    out = write_kb(make_demo_kb(seed=1, n_datasets=4, n_models=3), tmp_path / "out")
    before = snapshot(out)
    args = (["demo-kb", "--out", out, "--datasets", "5", "--models", "3", "--no-zoo-features"]
            if command == "demo-kb" else ["import", "parc", _parc_csv(tmp_path), "--out", out])
    job = start(tmp_path, "cli", *args, pause="mnc_core.kb.store:swap_in")
    job.wait_until(job.ready.exists, "the staged knowledge base")
    assert leftovers(tmp_path), "the signal must land while the new KB is staged"
    job.stop(signum)
    assert_interrupted(job, signum)
    assert snapshot(out) == before and leftovers(tmp_path) == []
    run(tmp_path, "cli", *args)
    assert read_kb(out).datasets != make_demo_kb(seed=1, n_datasets=4, n_models=3).datasets
    assert leftovers(tmp_path) == []


def test_a_killed_writers_staging_is_swept_by_the_next_write(tmp_path: Path, snapshot) -> None:
    out = write_kb(make_demo_kb(seed=1, n_datasets=4, n_models=3), tmp_path / "out")
    before = snapshot(out)
    args = ["demo-kb", "--out", out, "--datasets", "5", "--models", "3", "--no-zoo-features"]
    job = start(tmp_path, "cli", *args, pause="mnc_core.kb.store:swap_in")
    job.wait_until(job.ready.exists, "the staged knowledge base")
    job.stop(signal.SIGKILL)
    assert len(leftovers(tmp_path)) == 1 and snapshot(out) == before  # nothing could clean up
    run(tmp_path, "cli", *args)
    assert leftovers(tmp_path) == [] and len(read_kb(out).datasets) == 5


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny SD 1.5 pipeline and a 12-image dataset the t2i tests use."""
    from mnc_core.t2i.synthetic_data import make_synthetic_dataset
    from mnc_core.t2i.tiny_pipelines import build_tiny_pipeline

    root = tmp_path_factory.mktemp("interrupt_t2i")
    dataset = make_synthetic_dataset(root / "shapes", "shapes", n_images=12, seed=0, size=32)
    return build_tiny_pipeline("sd15", root / "sd15"), dataset


def test_lora_training_stops_while_a_checkpoint_is_staged(tmp_path: Path, tiny_world) -> None:
    pipeline, dataset = tiny_world
    out = tmp_path / "run"
    job = start(tmp_path, "lora", pipeline, dataset, out,
                pause="mnc_core.t2i.lora_training:save_lora")
    job.wait_until(job.ready.exists, "the first checkpoint")
    assert leftovers(out), "the signal must land while the checkpoint is staged"
    job.stop(signal.SIGTERM)
    assert_interrupted(job, signal.SIGTERM)
    assert leftovers(out) == [] and not (out / "final").exists()
    run(tmp_path, "lora", pipeline, dataset, out)
    assert (out / "final" / "pytorch_lora_weights.safetensors").is_file()
    assert leftovers(out) == []


@pytest.mark.slow  # two torch processes; the library-side clean-up is also in test_folders
def test_embedding_in_a_library_host_cleans_up_on_keyboard_interrupt(
    tmp_path: Path, tiny_world
) -> None:
    """No `mnc` handler here (as under Dagster): Ctrl-C is Python's KeyboardInterrupt, and
    the staged cache is removed on the way out."""
    _, dataset = tiny_world
    cache = tmp_path / "cache"
    job = start(tmp_path, "embed-lib", dataset, cache,
                pause="mnc_core.t2i.clip_embed:swap_in")
    job.wait_until(job.ready.exists, "the staged cache")
    assert leftovers(tmp_path)
    job.stop(signal.SIGINT)
    assert "KeyboardInterrupt" in job.stderr.read_text()
    assert leftovers(tmp_path) == [] and not cache.exists()
    assert_no_process_left(job)
    run(tmp_path, "embed", dataset, cache)
    assert (cache / "key.json").is_file() and leftovers(tmp_path) == []
