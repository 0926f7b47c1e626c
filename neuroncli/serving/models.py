"""Served models: the loaded versions of each, kept in step with their base paths.

A :class:`ServedModel` polls its base path (:mod:`~neuroncli.serving.versions`), loads the
versions its policy asks for through :func:`neuroncli.load` (so placement, replication,
``NEURON_RT_VISIBLE_CORES`` and the instance type behave exactly as in ``neuron-run``) and
unloads the ones that went away.  With the ``latest`` policy a new version replaces the old
only once it has loaded: a version still being copied, or one that fails to load, leaves the
previous one serving, and the failure is reported in the model's status (TF Serving's
``END`` state with the error).  A failed version is retried when its files change.

Requests hold a version while they run (:meth:`LoadedVersion.enter`); unloading waits for
them, so a hot swap never fails a request that was already accepted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from neuroncli.serving.config import ModelConfig
from neuroncli.serving.status import NOT_FOUND, OK, ServingError, from_exception
from neuroncli.serving.versions import ReadinessTracker, Snapshot, version_dirs

LOG = logging.getLogger("neuroncli.serving")
DEFAULT_SIGNATURE = "serving_default"

# TF Serving's ModelVersionStatus.State names.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass(frozen=True)
class VersionStatus:
    """One version as GetModelStatus reports it (``error_code`` is a canonical code name)."""

    version: int
    state: str
    error_code: str = OK
    error_message: str = ""


class LoadedVersion:
    """One version on the simulated cores: its default signature loaded at once, the
    others on first use (each signature is one :func:`neuroncli.load`)."""

    def __init__(self, name: str, version: int, path: str) -> None:
        from neuroncli.savedmodel import read_saved_model, select_meta_graph
        self.name, self.version, self.path = name, version, path
        meta_graph = select_meta_graph(read_saved_model(path).saved_model)
        self.signature_defs = meta_graph.signature_def
        keys = sorted(k for k in self.signature_defs if not k.startswith("__"))
        self.default_key = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in keys else (
            keys[0] if keys else DEFAULT_SIGNATURE)
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._inflight = 0
        self.model(self.default_key)

    def model(self, signature_name: str = "") -> Any:
        """The loaded model serving ``signature_name`` (``""``: ``serving_default``)."""
        import neuroncli
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            known = ", ".join(sorted(self.signature_defs)) or "none"
            raise ServingError(NOT_FOUND, f'Serving signature key "{key}" not found '
                               f"(model {self.name} version {self.version} has: {known})")
        with self._lock:
            if key not in self._models:
                # the flat signature TF Serving serves (a saved trace too: not TracedModel)
                self._models[key] = neuroncli.runtime.load(self.path, key)
            return self._models[key]

    def models(self) -> list[Any]:
        with self._lock:
            return list(self._models.values())

    def enter(self) -> None:
        with self._idle:
            self._inflight += 1

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            if not self._inflight:
                self._idle.notify_all()

    def unload(self) -> None:
        """Wait for the requests using this version, then free its cores."""
        with self._idle:
            self._idle.wait_for(lambda: self._inflight == 0)
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for model in models:
            model.unload()


class ServedModel:
    """One model name: its versions on disk, loaded, and their status."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._loaded: dict[int, LoadedVersion] = {}
        self._status: dict[int, VersionStatus] = {}
        # version -> the files it failed to load from, and the status saying why
        self._failed: dict[int, tuple[Snapshot, VersionStatus]] = {}
        self._tracker = ReadinessTracker()

    @property
    def name(self) -> str:
        return self.config.name

    # -- requests -------------------------------------------------------------------------
    def acquire(self, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The version a request asks for, entered (call ``leave()`` when done)."""
        if label:
            if label not in self.config.labels:
                raise ServingError(NOT_FOUND, f"Unrecognized servable version label: "
                                   f"{label} (model {self.name})")
            version = self.config.labels[label]
        with self._lock:
            if version is None:
                chosen = self._loaded[max(self._loaded)] if self._loaded else None
                wanted = f"Latest({self.name})"
            else:
                chosen = self._loaded.get(version)
                wanted = f"Specific({self.name}, {version})"
            if chosen is None:
                raise ServingError(NOT_FOUND, f"Servable not found for request: {wanted}")
            chosen.enter()
            return chosen

    def status(self, version: int | None = None) -> list[VersionStatus]:
        with self._lock:
            found = sorted(self._status.values(), key=lambda s: -s.version)
        if version is not None:
            found = [s for s in found if s.version == version]
            if not found:
                raise ServingError(NOT_FOUND, f"Could not find version {version} of model "
                                   f"{self.name}")
        elif not found:
            raise ServingError(NOT_FOUND, f"Could not find any versions of model {self.name}")
        return found

    def loaded(self) -> list[LoadedVersion]:
        with self._lock:
            return [self._loaded[v] for v in sorted(self._loaded)]

    def pending(self) -> bool:
        """A version the policy wants is still settling (being copied)."""
        with self._lock:
            return any(s.state == START for s in self._status.values())

    # -- keeping up with the disk ---------------------------------------------------------
    def poll(self) -> None:
        """Load the aspired versions that settled; unload the ones no longer wanted."""
        present = version_dirs(self.config.base_path)
        aspired = self.config.policy.aspired(list(present))
        for version in aspired:
            if version not in self._loaded:
                self._consider(version, present[version])
        with self._lock:
            for version in list(self._status):
                if version not in present and self._status[version].state == START:
                    del self._status[version]
        everything_up = all(v in self._loaded for v in aspired)
        for version in sorted(self._loaded):
            keep_old = self.config.policy.kind == "latest" and not everything_up
            if version not in aspired and (version not in present or not keep_old):
                self._unload(version)

    def _consider(self, version: int, path: str) -> None:
        settled = self._tracker.ready(path)
        if settled is None:
            with self._lock:
                self._status[version] = VersionStatus(version, START)
            return
        failed = self._failed.get(version)
        if failed is not None and failed[0] == settled:
            with self._lock:
                self._status[version] = failed[1]
            return
        self._load(version, path, settled)

    def _load(self, version: int, path: str, settled: Snapshot) -> None:
        with self._lock:
            self._status[version] = VersionStatus(version, LOADING)
        LOG.info("Loading servable version {name: %s version: %d} from %s", self.name,
                 version, path)
        try:
            loaded = LoadedVersion(self.name, version, path)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, never fatal
            error = from_exception(exc)
            status = VersionStatus(version, END, error.code, error.message)
            LOG.warning("Failed to load servable version {name: %s version: %d}: %s",
                      self.name, version, error.message)
            with self._lock:
                self._failed[version] = (settled, status)
                self._status[version] = status
            return
        with self._lock:
            self._failed.pop(version, None)
            self._loaded[version] = loaded
            self._status[version] = VersionStatus(version, AVAILABLE)
        LOG.info("Successfully loaded servable version {name: %s version: %d}", self.name,
                 version)

    def _unload(self, version: int) -> None:
        with self._lock:
            loaded = self._loaded.pop(version)
            self._status[version] = VersionStatus(version, UNLOADING)
        loaded.unload()
        self._tracker.forget(loaded.path)
        with self._lock:
            self._status[version] = VersionStatus(version, END)
        LOG.info("Unloaded servable version {name: %s version: %d}", self.name, version)

    def unload_all(self) -> None:
        for version in sorted(self._loaded):
            self._unload(version)


class ModelManager:
    """Every served model, polled every ``poll_seconds`` (0: once, at start, as TF Serving)."""

    def __init__(self, configs: Iterable[ModelConfig], poll_seconds: float = 1.0) -> None:
        self.models = {c.name: ServedModel(c) for c in configs}
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise ServingError(NOT_FOUND, f"Servable not found for request: Latest({name})")
        return model

    def poll(self) -> None:
        for model in self.models.values():
            model.poll()

    def settle(self, timeout: float) -> None:
        """Poll until no aspired version is still being copied, or ``timeout`` passes."""
        self.poll()
        waited = 0.0
        step = 0.2
        while waited < timeout and any(m.pending() for m in self.models.values()):
            if self._stop.wait(step):
                return
            waited += step
            self.poll()

    def start(self) -> None:
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="neuron-serve-poll",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad scan
                LOG.exception("polling the model base paths failed")

    def stop(self) -> None:
        """Stop polling and unload everything (after the requests in flight)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for model in self.models.values():
            model.unload_all()
