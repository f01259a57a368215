"""What every `mnc` command area shares, defined once: the usage-error exit, the
one-line error rule, the interrupt rule (SIGINT / SIGTERM) and the `--seed` option."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import typer

USAGE_ERROR = 2

# After the first SIGINT/SIGTERM the command unwinds (workers killed, staging removed,
# which takes well under a second); should that ever hang, the process ends anyway.
INTERRUPT_GRACE_S = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_MESSAGE = "interrupted by {signal}: stopped; no half-written output is kept"

# Seeds reach numpy's legacy RandomState (walk sampling) and CatBoost, which take
# 32-bit seeds; checking the range here gives a usage error naming --seed instead
# of a traceback deep in a fit.
MAX_SEED = 2**32 - 1


def add_command(app: typer.Typer, name: str, function: Callable[..., None]) -> None:
    """Register `function` as the command `name` of `app`.

    Why not `app.command(name)` alone: in its command list Typer's rich help keeps the
    line breaks of a docstring's first paragraph, so `mnc --help` printed descriptions
    broken mid-sentence. The list gets that paragraph on one line (`short_help`); the
    command's own `--help` still shows the whole docstring.
    """
    first_paragraph = inspect.cleandoc(function.__doc__ or "").split("\n\n")[0]
    app.command(name, short_help=" ".join(first_paragraph.split()))(function)


def seed_option(help: str) -> typer.models.OptionInfo:
    """`--seed N`, 0 <= N <= MAX_SEED."""
    return typer.Option(min=0, max=MAX_SEED, help=f"{help} (0..2**32-1)")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while an `mnc` command ran.

    A KeyboardInterrupt on purpose: library code cleans up on BaseException (workers,
    staging folders) and so treats SIGTERM exactly like Ctrl-C, as it does Dagster's
    interrupt of a cancelled step.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopState:
    """The first stop signal of this process (None: none yet) and whether it was reported."""

    signum: int | None = None
    announced = False
    lock = threading.Lock()


def run_or_exit(action: Callable[[], None]) -> None:
    """Run `action`, the body of every `mnc` command.

    An error the user can fix (bad input, unknown id, unwritable path) becomes one line
    on stderr and exit status 2, never a traceback. SIGINT or SIGTERM stops the command
    at once: the exception unwinds through the library (which kills its workers and
    removes its staging), one line says so, and the exit status is 128 + the signal
    number (130, 143). Signal handlers are installed only here, never by the library.
    """
    _StopState.signum, _StopState.announced = None, False
    try:
        with _stop_signals_raise():
            action()
    except BaseException as exc:
        _exit_for(exc)
        raise


def _exit_for(exc: BaseException) -> None:
    """Raise the typer.Exit that `exc` deserves; return (to re-raise it) if it is a bug."""
    signum = _StopState.signum
    if signum is None and isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGINT  # handlers not ours (not the main thread)
    if _StopState.signum is not None:  # our handler saw a signal: the library has unwound
        _announce(signum)
        _end_now(signum)
    if signum is not None:  # whatever a library made of the interrupt, it is one
        _announce(signum)
        raise typer.Exit(code=128 + signum) from None
    if isinstance(exc, KeyError):  # str(KeyError) adds quotes: print the message itself
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(code=USAGE_ERROR) from None
    if isinstance(exc, ValueError | OSError):
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=USAGE_ERROR) from None


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while the block runs.

    After a stop signal the handler stays (repeats are swallowed so that a second
    Ctrl-C cannot break the clean-up half-way) until the process exits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (e.g. a command run from a thread)
        return
    previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    for s in _STOP_SIGNALS:
        signal.signal(s, _on_stop_signal)
    try:
        yield
    finally:
        if _StopState.signum is None:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _on_stop_signal(signum: int, frame: object) -> None:
    if _StopState.signum is not None:
        return  # already stopping
    _StopState.signum = signum
    deadline = threading.Timer(INTERRUPT_GRACE_S, _hard_exit, args=(signum,))
    deadline.daemon = True
    deadline.start()
    raise Interrupted(signum)


def _hard_exit(signum: int) -> None:
    """The clean-up overran its grace: kill the workers and end the process now (a
    staging folder left behind is swept by the next write of its target)."""
    for child in multiprocessing.active_children():
        child.kill()
    _announce(signum)
    os._exit(128 + signum)


def _end_now(signum: int) -> None:
    """End the process once the clean-up (the library's `finally` blocks) is done.

    Interpreter shutdown after an interrupt (atexit hooks, the teardown of torch and other
    libraries) can outlast the grace timer, which as a daemon thread no longer runs then:
    an interrupted LoRA training on a loaded machine was seen alive 15 s after SIGTERM.
    Nothing of ours is left to do here, so the process ends with its status, streams
    flushed.
    """
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(128 + signum)


def _announce(signum: int) -> None:
    """The one line an interrupted command prints, at most once per process."""
    with _StopState.lock:
        if _StopState.announced:
            return
        _StopState.announced = True
    message = INTERRUPTED_MESSAGE.format(signal=signal.Signals(signum).name)
    with suppress(OSError):  # stderr gone (a closed pipe): the exit status still says it
        typer.echo(message, err=True)
