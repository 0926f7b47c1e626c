"""What every command shares: logging options, error handling, consoles and the status line.

Commands are thin: parse arguments, call the library, print.  :func:`run` turns a
:class:`~neuroncli.errors.UserError` into one line on stderr and its exit code (the traceback
only with ``-v``), any other exception into one line naming the stage that failed
(:func:`neuroncli.errors.stage`; exit 1, the traceback only with ``-v``), Ctrl-C into exit 130
with one line (which says so if the output had already been renamed into place), and ends a
successful run with a status line ``PASSED | 2.41 s | neuron-compile ...`` on stderr.  :func:`invoke` does the same for click's
usage errors (exit 2, one line).  Results go to stdout, through the consoles of
:mod:`neuroncli.rendering` (no wrapped names in CI logs, colour off without a terminal or
with ``NO_COLOR``).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

import click

from neuroncli.errors import (
    EXIT_INTERRUPTED, EXIT_OK, EXIT_USER, UserError, unexpected_error_line,
)
from neuroncli.rendering import make_console


class NonEmptyPath(click.Path):
    """A path argument that refuses ``""``: the empty string would silently mean the working
    directory (``os.path.abspath("")``), e.g. an output that "already exists"."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty: pass a file or directory name", param, ctx)
        return super().convert(value, param, ctx)


def verbosity_options(func: Callable) -> Callable:
    func = click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")(func)
    func = click.option("-v", "--verbose", count=True,
                        help="More detail; tracebacks for errors. Repeat for TF logs.")(func)
    return func


def model_selection_options(func: Callable) -> Callable:
    """``--signature_def`` and ``--tag_set`` (both spellings), as every model-reading command
    takes them; the callback receives ``signature_def`` and ``tags`` (a tuple or None)."""
    func = click.option("--tag_set", "--tag-set", "tags", metavar="TAGS", callback=_split_tags,
                        help="Comma-separated tag set of the meta graph (default: serve).")(func)
    func = click.option("--signature_def", "--signature-def", "--signature_def_key",
                        "signature_def",
                        help="Signature to use (default: serving_default).")(func)
    return func


def _split_tags(ctx: click.Context, param: click.Parameter,
                value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(t for t in value.split(",") if t)


def instance_type_option(func: Callable) -> Callable:
    """``--instance-type`` for the commands that run on the simulated device."""
    return click.option("--instance-type", "--instance_type", "instance_type", metavar="TYPE",
                        help="Simulated instance, e.g. inf1.xlarge (default inf2.xlarge)."
                        )(func)


def echo_rewrite_report(report: Any, as_json: bool, quiet: bool,
                        describe: Callable[[Any], str]) -> None:
    """A rewrite's result: its JSON, or one line per meta graph ``{tags}: describe(meta)``."""
    if as_json:
        click.echo(report.to_json())
    elif not quiet:
        for meta in report.meta_graphs:
            click.echo(f"meta graph {{{','.join(meta.tags)}}}: {describe(meta)}")


def stdout_console() -> Any:
    """Results: :func:`neuroncli.rendering.make_console` (sized for terminals and logs)."""
    return make_console()


def stderr_console() -> Any:
    return make_console(stderr=True)


class _OneLineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        click.echo(f"{level}: {record.getMessage()}", err=True)


def setup_logging(verbose: int, quiet: bool) -> None:
    logger = logging.getLogger("neuroncli")
    logger.handlers[:] = [_OneLineHandler()]
    logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose > 1
                    else logging.INFO if verbose else logging.WARNING)
    if verbose > 1:
        os.environ.setdefault("NEURONCLI_TF_VERBOSE", "1")


def command_line() -> str:
    prog = os.path.basename(sys.argv[0]) if sys.argv else "neuron"
    return " ".join([prog, *sys.argv[1:]])


def run(body: Callable[[], int | None], *, verbose: int = 0, quiet: bool = False,
        status: bool = True) -> None:
    """Run a command body with the house rules for errors, Ctrl-C and the status line."""
    started = time.perf_counter()
    committed_before = _commits()[0]
    stderr_fd = _exit_on_ctrl_c(committed_before)
    code = EXIT_OK
    try:
        code = body() or EXIT_OK
    except UserError as exc:
        _outcome_decided()
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:  # raised by code, or before the handler was installed
        _outcome_decided()
        click.echo(_interrupted(committed_before), err=True)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = EXIT_OK
    except Exception as exc:  # not expected: still one line, naming the stage that failed
        _outcome_decided()
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {unexpected_error_line(exc)}", err=True)
        code = EXIT_USER
    _outcome_decided()
    if stderr_fd is not None:
        os.close(stderr_fd)
    # A failure is exactly one line on stderr (the error); success ends with a status line.
    if status and not quiet and code == EXIT_OK:
        click.echo(f"PASSED | {time.perf_counter() - started:.2f} s | {command_line()}",
                   err=True)
    sys.exit(code)


def _commits() -> tuple[int, str | None]:
    """Outputs renamed into place so far (:func:`neuroncli.savedmodel.writer.commits`)."""
    writer = sys.modules.get("neuroncli.savedmodel.writer")  # not imported: nothing written
    return writer.commits() if hasattr(writer, "commits") else (0, None)


def _interrupted(committed_before: int) -> str:
    # The output may have been renamed into place just before Ctrl-C (while the report was
    # printed, say): then "nothing was written" would be false.
    count, last = _commits()
    return (f"interrupted: {last} had already been written" if count > committed_before
            else "interrupted: nothing was written")


def _exit_on_ctrl_c(committed_before: int) -> int | None:
    """Make Ctrl-C end the command from the signal handler: clean up, one line, exit 130.

    A KeyboardInterrupt is not enough: raised inside TensorFlow's C++-to-Python callbacks
    (``nest.flatten``'s isinstance checks, say) it is swallowed, printed, or turned into a
    wrong result, and the command carries on and writes its output.  The handler removes
    the temporaries being filled (:func:`~neuroncli.savedmodel.writer.abandon_temporaries`),
    writes its line on a duplicate of the original stderr (``lazy_tf`` points fd 2 at
    /dev/null while TensorFlow imports) and leaves with ``os._exit``: no TensorFlow teardown.
    Returns that duplicate, for the caller to close once Ctrl-C is ignored again.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return None
    stderr_fd = os.dup(2)

    def on_ctrl_c(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits for the clean-up
        writer = sys.modules.get("neuroncli.savedmodel.writer")
        if hasattr(writer, "abandon_temporaries"):
            writer.abandon_temporaries()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.write(stderr_fd, (_interrupted(committed_before) + "\n").encode())
        os._exit(EXIT_INTERRUPTED)

    signal.signal(signal.SIGINT, on_ctrl_c)
    return stderr_fd


def _outcome_decided() -> None:
    """Ignore Ctrl-C from here to the exit: the exit code is decided, and a late SIGINT would
    otherwise print a second message or (once the interpreter has reset its handlers while
    tearing TensorFlow down) kill a run that already succeeded."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


HELP_OPTIONS = ["-h", "--help"]


def invoke(cmd: click.Command, prog_name: str) -> None:
    """Console-script entry: ``-h``/``--help`` and ``--version`` on every script; click's
    usage errors as one line and exit code 2."""
    if not any(p.name == "version" for p in cmd.params):
        click.version_option(package_name="neuroncli", prog_name=prog_name)(cmd)
    # The commands never run a NeuronOp through TensorFlow's loaders: they need not build or
    # load the op library when they import TensorFlow (nor print that it is unavailable).
    from neuroncli.tfop import hook
    hook.uninstall()
    try:
        cmd.main(prog_name=prog_name, standalone_mode=False, help_option_names=HELP_OPTIONS)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Ctrl-C before the command body started
        _outcome_decided()
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog_name
        click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(EXIT_OK)


def command(func: Callable) -> Callable:
    """Decorate a click callback taking ``verbose``/``quiet`` so it runs under :func:`run`."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        verbose, quiet = kwargs.get("verbose", 0), kwargs.get("quiet", False)
        setup_logging(verbose, quiet)
        run(lambda: func(*args, **kwargs), verbose=verbose, quiet=quiet)
    return wrapper


def progress_callback(enabled: bool) -> tuple[Any, Callable | None]:
    """A rich progress bar on a terminal (stderr), else nothing."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=stderr_console(), transient=True)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(f"{stage} segments", total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update
