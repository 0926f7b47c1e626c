"""Version directories under a model's base path, and when one is safe to load.

TF Serving serves ``base_path/<integer>/`` directories.  A version being copied in (``cp -r``,
``aws s3 sync``) must not be loaded half-written, and a truncated ``saved_model.pb`` can still
parse when it was cut at a field boundary, so parsing alone proves nothing.  A version is
*ready* when nothing in its tree changed for :data:`QUIET_SECONDS` (change times, which a copy
cannot backdate, unlike modification times) and the same snapshot was seen by two scans.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from neuroncli.errors import UserError
from neuroncli.savedmodel.reader import saved_model_file

# A version directory must be this still before it is loaded: copies in progress write more
# often than this, and a person waiting for a new version barely notices it.
QUIET_SECONDS = 1.0


@dataclass(frozen=True)
class Snapshot:
    """What a version directory held at one scan.

    files: (relative path, size, mtime ns, ctime ns) of every file, sorted.
    newest_change: the latest change time (seconds since the epoch) in the tree.
    has_saved_model: ``saved_model.pb`` (or ``.pbtxt``) is present.
    """

    files: tuple[tuple[str, int, int, int], ...]
    newest_change: float
    has_saved_model: bool


def version_dirs(base_path: str) -> dict[int, str]:
    """``{version: path}`` of the integer-named directories under ``base_path``."""
    try:
        entries = os.listdir(base_path)
    except OSError:
        return {}
    found = {}
    for name in entries:
        if name.isdigit() and os.path.isdir(os.path.join(base_path, name)):
            found[int(name)] = os.path.join(base_path, name)
    return found


def snapshot(path: str) -> Snapshot:
    """The files of a version directory now (missing or vanishing files are skipped)."""
    files = []
    newest = os.stat(path).st_ctime if os.path.exists(path) else 0.0
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            files.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns,
                          st.st_ctime_ns))
            newest = max(newest, st.st_ctime)
    try:
        has_model = os.path.isfile(saved_model_file(path))
    except UserError:  # not there (yet), or not a file
        has_model = False
    return Snapshot(tuple(files), newest, has_model)


class ReadinessTracker:
    """Remembers the previous snapshot of every version to tell settled from in-progress."""

    def __init__(self, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.quiet_seconds = quiet_seconds
        self._seen: dict[str, Snapshot] = {}

    def ready(self, path: str) -> Snapshot | None:
        """The settled snapshot of ``path``, or None while it may still be changing."""
        now = snapshot(path)
        previous, self._seen[path] = self._seen.get(path), now
        if not now.has_saved_model or previous != now:
            return None
        if time.time() - now.newest_change < self.quiet_seconds:
            return None
        return now

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)
