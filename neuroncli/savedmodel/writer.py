"""Write SavedModel directories atomically, never touching the input or reaching outside it.

:func:`atomic_output` validates the output path before any work starts, hands out a temporary
sibling directory (``.<name>.tmp-<pid>-<random>``, made by :func:`tempfile.mkdtemp`), and
renames it into place only when the body finished; on any exception (Ctrl-C included) the
temporary is removed.  The writer holds an ``fcntl.flock`` on the temporary for its whole
life, so a leftover of a killed run (SIGKILL leaves no chance to clean up) is exactly a
temporary nobody holds a lock on, and the next run that writes the same output removes it; a
pid in the name is for people, never trusted (pids are reused).  The rename is the commit:
Ctrl-C is held over it;
:func:`commits` lets the command line tell "nothing was written" from "it was, just now", and
:func:`abandon_temporaries` lets its Ctrl-C handler clean up before it exits.

:func:`check_model_files` refuses, before anything reads them, model files that are links,
special files or paths leaving the model directory (``variables/``, ``assets/``,
``assets.extra/``, and the ``asset_file_def`` file names TensorFlow would open);
:func:`copy_model_files` applies the same rules, then copies without following links.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import stat
import tempfile
import threading
from typing import Any, Iterable, Iterator

from neuroncli.errors import UserError

_TMP_MARK = ".tmp-"
MODEL_PARTS = ("variables", "assets", "assets.extra")


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def check_output_path(output_dir: str, *, input_dir: str | None, force: bool) -> str:
    """Validate ``output_dir`` against the input and the file system; returns its abspath."""
    if not str(output_dir).strip():  # abspath("") would be the working directory
        raise UserError("the output directory is an empty path: name a new directory")
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
    parent = _existing_ancestor(out)
    if not os.path.isdir(parent):
        raise UserError(f"{output_dir}: the parent directory {parent} is not a directory: "
                        "choose an output inside a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{output_dir}: the parent directory {parent} is not writable: "
                        "choose another output path or fix its permissions")
    return out


def _existing_ancestor(out: str) -> str:
    """The nearest ancestor of ``out`` that exists (missing parents are created at write
    time, as ``tf.saved_model.save`` and AWS's ``saved_model.compile`` do)."""
    parent = os.path.dirname(out)
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    return parent


def _make_parents(out: str) -> list[str]:
    """Create the missing parents of ``out``; returns them, outermost first."""
    missing = []
    parent = os.path.dirname(out)
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory)
    return list(reversed(missing))


def _remove_parents(created: list[str]) -> None:
    """Undo :func:`_make_parents` after a failure: nothing written means no new directory."""
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:  # someone else put something there meanwhile: leave it
            return


# The lock is taken on the temporary directory itself (a descriptor of it), not on a file
# inside: a file would have to leave the directory before the rename that commits it, and a
# temporary without its lock file between that unlink and the rename would look abandoned.
# flock(2) locks follow the open file, not the path: the lock stays held across the rename and
# is released by the kernel when the writer exits, however it exits.


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_dir(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone (renamed into place, removed) or not a directory of ours
        return None


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _make_temporary(out: str, output_dir: str) -> tuple[str, int]:
    """Create and lock a temporary sibling of ``out``: ``(its path, the locked descriptor)``.

    Another run may judge the new directory stale in the instant before it is locked and
    remove it; the inode check sees that, and a fresh one is made.
    """
    parent, name = os.path.split(out)
    while True:
        try:
            tmp = tempfile.mkdtemp(prefix=f".{name}{_TMP_MARK}{os.getpid()}-", dir=parent)
        except OSError as exc:  # os.access said yes, but the file system refuses (read-only)
            raise UserError(f"{output_dir}: cannot create a directory in {parent} "
                            f"({exc.strerror}): choose an output on a writable file system"
                            ) from None
        fd = _open_dir(tmp)
        if fd is not None and _lock(fd) and _same_inode(fd, tmp):
            # mkdtemp makes it 0700; the output gets the mode os.mkdir would give it.
            os.chmod(fd, 0o777 & ~_umask())
            return tmp, fd
        if fd is not None:
            os.close(fd)


def _same_inode(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return False


def remove_stale_temporaries(out: str) -> None:
    """Delete ``.<name>.tmp-*`` siblings no live writer holds the lock of.  The lock is held
    while they are removed, so no two runs remove the same one and no writer takes it back."""
    parent, name = os.path.split(out)
    prefix = f".{name}{_TMP_MARK}"
    for entry in sorted(os.listdir(parent)):
        if not entry.startswith(prefix):
            continue
        path = os.path.join(parent, entry)
        fd = _open_dir(path)
        if fd is None:
            continue
        try:
            if _lock(fd):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


class _State:
    """This process's outputs: renamed into place (a count and the latest path), and the
    temporaries being filled now."""

    def __init__(self) -> None:
        self.count = 0
        self.last: str | None = None
        self.active: set[str] = set()


_state = _State()


def commits() -> tuple[int, str | None]:
    """``(outputs committed by this process so far, the latest one)``."""
    return _state.count, _state.last


def abandon_temporaries() -> None:
    """Remove the temporaries being filled, now: for a Ctrl-C handler that exits at once.
    Another thread may still be copying into one, so each is removed until it stays gone."""
    for tmp in sorted(_state.active):
        for _ in range(100):
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.lexists(tmp):
                break


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C over a few system calls that must complete together; deliver it after.

    Only the main thread runs signal handlers, and only there can they change; a handler that
    is not a Python callable (ignored, or the C default) is left alone.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        previous(signal.SIGINT, None)  # Python's default raises KeyboardInterrupt


@contextlib.contextmanager
def atomic_output(output_dir: str, *, input_dir: str | None = None,
                  force: bool = False) -> Iterator[str]:
    """Yield a temporary directory that becomes ``output_dir`` when the block succeeds."""
    out = check_output_path(output_dir, input_dir=input_dir, force=force)
    created = _make_parents(out)
    remove_stale_temporaries(out)
    with _interrupts_held():  # a Ctrl-C handler must find every temporary in _state.active
        tmp, fd = _make_temporary(out, output_dir)
        _state.active.add(tmp)
    try:
        yield tmp
        with _interrupts_held():
            _replace(tmp, out, force=force)  # the lock is held over the rename
            _state.count += 1
            _state.last = out
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_parents(created)
        raise
    finally:
        _state.active.discard(tmp)
        os.close(fd)  # releases the lock


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


def check_model_files(model_dir: str, asset_filenames: Iterable[str] = (),
                      parts: tuple[str, ...] = MODEL_PARTS) -> None:
    """Refuse links, special files and paths leaving ``model_dir``, before anything reads them.

    ``asset_filenames`` are a meta graph's ``asset_file_def`` names: TensorFlow opens
    ``assets/<name>`` when it loads the model, so ``../x`` or ``/etc/x`` would be read from
    outside the model.
    """
    root = _real(model_dir)
    for part in parts:
        for _ in _walk_part(model_dir, part, root):
            pass
    assets = os.path.join(root, "assets")
    for filename in asset_filenames:
        path = os.path.join(assets, filename)
        if (not filename or "\0" in filename or os.path.isabs(filename)
                or os.path.normpath(filename).split(os.sep)[0] == ".."
                or not _real(path).startswith(assets + os.sep)):
            raise UserError(f"{model_dir}: asset_file_def names {filename!r}, which is not a "
                            "file inside the model's assets/: refusing the model")


def _walk_part(model_dir: str, part: str, root: str) -> Iterator[tuple[str, str]]:
    """``(relative path, kind)`` for every entry of ``model_dir/part``, parents first; kind is
    ``dir`` or ``file``.  Raises :class:`UserError` at the first entry that breaks the rules."""
    top = os.path.join(model_dir, part)
    if not os.path.lexists(top):
        return
    if os.path.islink(top) or not os.path.isdir(top):
        raise UserError(f"{top}: expected a directory inside the model, found a link "
                        "or a file: refusing it")
    yield part, "dir"
    stack = [part]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(model_dir, rel_dir)) as entries:
            found = sorted(entries, key=lambda e: e.name)
        for entry in found:
            rel = os.path.join(rel_dir, entry.name)
            if entry.is_symlink():
                raise UserError(f"{entry.path}: is a symbolic link; neuroncli does not "
                                "follow links out of a model directory: replace it with the "
                                "file")
            if not _real(entry.path).startswith(root + os.sep):
                raise UserError(f"{entry.path}: lies outside the model directory: refusing "
                                "it")
            if entry.is_dir(follow_symlinks=False):
                yield rel, "dir"
                stack.append(rel)
            elif entry.is_file(follow_symlinks=False):
                yield rel, "file"
            else:
                raise UserError(f"{entry.path}: is not a regular file or directory (a pipe, "
                                "socket or device): refusing it")


def copy_model_files(src_dir: str, dst_dir: str, parts: tuple[str, ...] = MODEL_PARTS) -> None:
    """Copy sub-directories of a model, refusing links and paths that leave it.

    Every entry is checked before the first byte is copied, so a refusal leaves no partial copy.
    """
    root = _real(src_dir)
    entries = [item for part in parts for item in _walk_part(src_dir, part, root)]
    for rel, kind in entries:
        if kind == "dir":
            os.mkdir(os.path.join(dst_dir, rel))
        else:
            _copy_file(os.path.join(src_dir, rel), os.path.join(dst_dir, rel))


def _copy_file(src: str, dst: str) -> None:
    # Hard links would be faster but would let a later in-place edit of the output change
    # the input; a real copy keeps inputs sacred.  O_NOFOLLOW and the fstat check close the
    # window in which a checked file could be swapped for a link or a pipe.
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{src}: is a symbolic link; neuroncli does not follow links out "
                            "of a model directory: replace it with the file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{src}: is not a regular file: refusing it")
        with open(dst, "xb") as out:
            _send_all(fd, out)
    finally:
        os.close(fd)


def _send_all(fd: int, out: Any) -> None:
    """sendfile(2) in the kernel, as shutil.copyfile does; read/write where it is refused."""
    offset = 0
    try:
        while True:
            sent = os.sendfile(out.fileno(), fd, offset, 1 << 30)
            if sent == 0:
                return
            offset += sent
    except OSError as exc:
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
    with open(fd, "rb", closefd=False) as source:
        shutil.copyfileobj(source, out)
