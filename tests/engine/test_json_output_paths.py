"""Where `--json` may write: regular files are replaced atomically (keeping their mode, new
ones with the umask), FIFOs and /dev/null are written through, /dev/stdout is the stream,
and every other kind of node is refused with one line naming it, by every command."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.engine.report import (
    STREAM,
    THROUGH,
    check_json_path,
    json_destination,
    write_json,
)

DOCUMENT = {"methods": {"mnc": {"mean": {"osr": 0.5}}}}


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "report.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the node stays
    return path


def _device(tmp_path: Path) -> Path:
    """A character device node of our own (never the system's: a bug would replace it)."""
    path = tmp_path / "zero"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here ({exc})")
    return path


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_json(DOCUMENT, fifo)
    reader.join(10)
    assert json.loads(received[0]) == DOCUMENT
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_dev_null_and_the_standard_streams_are_never_replaced() -> None:
    assert json_destination(Path(os.devnull)) == THROUGH
    assert json_destination(Path("/dev/stdout")) == STREAM
    assert json_destination(Path("/dev/stderr")) == STREAM


def test_dev_stdout_redirected_to_a_file_keeps_what_was_printed_before(tmp_path: Path) -> None:
    """Opening /dev/stdout by name would truncate the file stdout is redirected to."""
    code = ("from pathlib import Path; from mnc_core.engine.report import write_json\n"
            "print('the table', flush=True)\n"
            f"write_json({DOCUMENT!r}, Path('/dev/stdout'))\n")
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        subprocess.run([sys.executable, "-c", code], stdout=handle, check=True)
    first, rest = out.read_text().split("\n", 1)
    assert first == "the table" and json.loads(rest) == DOCUMENT
    assert stat.S_ISREG(out.stat().st_mode)


def test_write_json_to_stdout_goes_to_the_stream(capsys) -> None:
    write_json(DOCUMENT, Path("/dev/stdout"))
    assert json.loads(capsys.readouterr().out) == DOCUMENT


@pytest.mark.parametrize("kind", ["socket", "device", "folder", "broken link"])
def test_other_nodes_are_refused_with_one_line_naming_them(tmp_path: Path, kind: str) -> None:
    if kind == "socket":
        path = _socket(tmp_path)
    elif kind == "device":
        path = _device(tmp_path)
    elif kind == "folder":
        path = tmp_path / "reports"
        path.mkdir()
    else:
        path = tmp_path / "link.json"
        path.symlink_to(tmp_path / "missing" / "x.json")
    before = path.lstat()
    for attempt in (check_json_path, lambda p: write_json(DOCUMENT, p)):
        with pytest.raises(ValueError, match=rf"^{path}: is .*{kind.split()[-1]}") as error:
            attempt(path)
        assert "\n" not in str(error.value)
    after = path.lstat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)


def test_a_link_to_a_report_replaces_the_report_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "results" / "eval.json"
    real.parent.mkdir()
    real.write_text("{}\n")
    real.chmod(0o640)
    link = tmp_path / "eval.json"
    link.symlink_to(real)
    write_json(DOCUMENT, link)
    assert link.is_symlink() and json.loads(real.read_text()) == DOCUMENT
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["eval.json"]


def test_new_reports_follow_the_umask_and_overwrites_keep_the_mode(tmp_path: Path) -> None:
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    old.write_text("{}\n")
    old.chmod(0o604)
    previous = os.umask(0o027)
    try:
        write_json(DOCUMENT, new)
        write_json(DOCUMENT, old)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    assert stat.S_IMODE(old.stat().st_mode) == 0o604
    assert json.loads(old.read_text()) == DOCUMENT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "old.json"]


@pytest.mark.parametrize("command", [
    ["evaluate", "--kb", "KB"], ["rank", "--kb", "KB", "--dataset", "x"], ["zoo", "features"],
])
def test_every_json_command_refuses_a_socket_before_any_work(
    tmp_path: Path, command: list[str]
) -> None:
    target = _socket(tmp_path)
    args = [str(tmp_path / "no-kb") if a == "KB" else a for a in command]
    result = CliRunner().invoke(app, [*args, "--json", str(target)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}: is a socket"), lines
    assert stat.S_ISSOCK(target.lstat().st_mode)
