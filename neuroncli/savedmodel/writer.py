"""Write SavedModel directories atomically, never touching the input.

:func:`atomic_output` validates the output path before any work starts, hands out a temporary
sibling directory (``.<name>.tmp-<pid>-<random>``), and renames it into place only when the
body finished; on any exception (Ctrl-C included) the temporary is removed.  Leftovers of a
killed run (SIGKILL leaves no chance to clean up) belong to dead pids and are removed by the
next run that writes the same output.

:func:`copy_model_files` copies ``variables/`` and ``assets/`` without following symlinks and
refuses anything that would reach outside the model directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from typing import Any, Iterator

from neuroncli.errors import UserError

_TMP_MARK = ".tmp-"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def check_output_path(output_dir: str, *, input_dir: str | None, force: bool) -> str:
    """Validate ``output_dir`` against the input and the file system; returns its abspath."""
    out = os.path.abspath(output_dir)
    if input_dir is not None:
        src = _real(input_dir)
        real_out = _real(out)
        if real_out == src:
            raise UserError(f"{output_dir}: the output directory is the input directory: "
                            "choose a new path (inputs are never modified)")
        if real_out.startswith(src + os.sep):
            raise UserError(f"{output_dir}: the output directory is inside the input "
                            f"directory {input_dir}: choose a path outside it")
        if src.startswith(real_out + os.sep) and force:
            raise UserError(f"{output_dir}: --force would delete the input directory "
                            f"{input_dir}, which is inside it: choose another path")
    if os.path.lexists(out):
        if not force:
            raise UserError(f"{output_dir}: already exists: remove it or pass --force")
        if not os.path.isdir(out) or os.path.islink(out):
            raise UserError(f"{output_dir}: exists and is not a directory: remove it first")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise UserError(f"{output_dir}: the parent directory {parent} does not exist: "
                        "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{output_dir}: the parent directory {parent} is not writable")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(out: str) -> None:
    """Delete ``.<name>.tmp-<pid>-*`` siblings whose writer process is gone."""
    parent, name = os.path.split(out)
    prefix = f".{name}{_TMP_MARK}"
    for entry in sorted(os.listdir(parent)):
        if not entry.startswith(prefix):
            continue
        pid_text = entry[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


@contextlib.contextmanager
def atomic_output(output_dir: str, *, input_dir: str | None = None,
                  force: bool = False) -> Iterator[str]:
    """Yield a temporary directory that becomes ``output_dir`` when the block succeeds."""
    out = check_output_path(output_dir, input_dir=input_dir, force=force)
    remove_stale_temporaries(out)
    parent, name = os.path.split(out)
    tmp = os.path.join(parent, f".{name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    try:
        yield tmp
        _replace(tmp, out, force=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: str, out: str, *, force: bool) -> None:
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if not force:  # appeared while we worked
        raise UserError(f"{out}: was created by someone else meanwhile: pass --force")
    trash = f"{tmp}.old"
    os.rename(out, trash)  # two renames: the path never holds a half-written model
    os.rename(tmp, out)
    shutil.rmtree(trash, ignore_errors=True)


def write_saved_model(directory: str, saved_model: Any) -> int:
    """Write ``saved_model.pb`` deterministically; returns its size."""
    data = saved_model.SerializeToString(deterministic=True)
    path = os.path.join(directory, "saved_model.pb")
    with open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def copy_model_files(src_dir: str, dst_dir: str,
                     parts: tuple[str, ...] = ("variables", "assets", "assets.extra")) -> None:
    """Copy sub-directories of a model, refusing links and paths that leave it."""
    root = _real(src_dir)
    for part in parts:
        src = os.path.join(src_dir, part)
        if not os.path.lexists(src):
            continue
        if os.path.islink(src) or not os.path.isdir(src):
            raise UserError(f"{src}: expected a directory inside the model, found a link "
                            "or a file: refusing to copy it")
        _copy_tree(src, os.path.join(dst_dir, part), root)


def _copy_tree(src: str, dst: str, root: str) -> None:
    os.mkdir(dst)
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = os.path.join(dst, entry.name)
        if entry.is_symlink():
            raise UserError(f"{entry.path}: is a symbolic link; neuroncli does not follow "
                            "links out of a model directory: replace it with the file")
        if not _real(entry.path).startswith(root + os.sep):
            raise UserError(f"{entry.path}: lies outside the model directory: refusing it")
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(entry.path, target, root)
        elif entry.is_file(follow_symlinks=False):
            _copy_file(entry.path, target)


def _copy_file(src: str, dst: str) -> None:
    # Hard links would be faster but would let a later in-place edit of the output change
    # the input; a real copy keeps inputs sacred.  copyfile uses sendfile on Linux.
    shutil.copyfile(src, dst)
