"""``--enable_batching``: merge concurrent requests into one call and split the result.

Like TF Serving's shared batch scheduler: every model signature has a queue of batches; a
request joins the open batch when its rows fit (``max_batch_size``) and its inputs have the
same trailing shapes and dtypes, else opens a new one, or is refused with
``RESOURCE_EXHAUSTED`` when ``max_enqueued_batches`` are already waiting.  A pool of
``num_batch_threads`` threads runs a batch once it is full, once its
``batch_timeout_micros`` passed, or at once when the timeout is 0 (then batches form from
whatever arrived while the threads were busy).  Merged rows run as one call of the model,
whose dynamic-batch NeuronOps shard them over the compiled batch.

Only models that accept any batch merge (every signature input has an unknown batch
dimension and every NeuronOp input has batch axis 0); others run request by request.  When a
merged call fails, its requests run one by one, so each gets its own result or error.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from neuroncli.serving.config import BatchingOptions
from neuroncli.serving.status import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ServingError


@dataclass
class _Task:
    """One request waiting in a batch."""

    feeds: Mapping[str, np.ndarray]
    rows: int
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


@dataclass
class _Batch:
    """Requests merged into one call (``key``: their trailing shapes and dtypes)."""

    model: Any
    key: tuple
    created: float
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0


def mergeable(model: Any) -> bool:
    """Whether requests to ``model`` may be concatenated along axis 0."""
    specs = model.signature.inputs.values()
    if not specs or any(s.shape is None or not s.shape or s.shape[0] is not None
                        for s in specs):
        return False
    return all(axis == 0 for program in model.programs for axis in program.input_batch_axis)


class BatchScheduler:
    """The batch queues of every model and the threads running their batches."""

    def __init__(self, options: BatchingOptions, threads: int) -> None:
        self.options = options
        self._cond = threading.Condition()
        self._queues: dict[int, collections.deque[_Batch]] = {}
        self._mergeable: dict[int, bool] = {}
        self._stopping = False
        self.batches_run = 0
        self._threads = [threading.Thread(target=self._work, name=f"neuron-serve-batch-{i}",
                                          daemon=True) for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def run(self, model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request through the batch queue of ``model`` (blocks until done)."""
        rows = self._rows(model, feeds)
        if rows is None:
            return model(dict(feeds))
        if rows > self.options.max_batch_size:
            raise ServingError(INVALID_ARGUMENT, f"Task size {rows} is larger than maximum "
                               f"input batch size {self.options.max_batch_size}: send at "
                               "most that many rows per request")
        task = _Task(feeds, rows)
        key = tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feeds.items()))
        with self._cond:
            direct = self._stopping  # accepted just before shutdown: threads may be gone
            if not direct:
                self._enqueue(model, key, task)
        if direct:
            return model(dict(feeds))
        task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.result is not None
        return task.result

    def _enqueue(self, model: Any, key: tuple, task: _Task) -> None:
        """Add ``task`` to the open batch of ``model`` or a new one (lock held)."""
        queue = self._queues.setdefault(id(model), collections.deque())
        last = queue[-1] if queue else None
        if last is None or last.key != key or \
                last.rows + task.rows > self.options.max_batch_size:
            if len(queue) >= self.options.max_enqueued_batches:
                raise ServingError(RESOURCE_EXHAUSTED, "The batch scheduling queue to which "
                                   "this task was submitted is full: retry later or raise "
                                   "max_enqueued_batches")
            last = _Batch(model, key, time.monotonic())
            queue.append(last)
        last.tasks.append(task)
        last.rows += task.rows
        self._cond.notify_all()

    def queued_rows(self) -> int:
        with self._cond:
            return sum(b.rows for q in self._queues.values() for b in q)

    def _rows(self, model: Any, feeds: Mapping[str, np.ndarray]) -> int | None:
        ok = self._mergeable.get(id(model))
        if ok is None:
            ok = self._mergeable[id(model)] = mergeable(model)
        counts = {v.shape[0] if getattr(v, "ndim", 0) else None for v in feeds.values()}
        if not ok or len(counts) != 1 or None in counts or \
                set(feeds) != set(model.signature.inputs):
            return None  # the model's own checks will say what is wrong, if anything
        return int(counts.pop())

    # -- the batch threads ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
                while batch is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait_seconds())
                    batch = self._take()
            self._execute(batch)

    def _ready(self, batch: _Batch, now: float) -> bool:
        timeout = self.options.batch_timeout_micros / 1e6
        return batch.rows >= self.options.max_batch_size or now - batch.created >= timeout \
            or self._stopping

    def _take(self) -> _Batch | None:
        now = time.monotonic()
        for model_id, queue in list(self._queues.items()):
            if queue and self._ready(queue[0], now):
                batch = queue.popleft()
                if not queue:
                    del self._queues[model_id]
                    self._mergeable.pop(model_id, None)
                return batch
        return None

    def _wait_seconds(self) -> float | None:
        timeout = self.options.batch_timeout_micros / 1e6
        starts = [q[0].created for q in self._queues.values() if q]
        if not starts:
            return None
        return max(0.0, min(starts) + timeout - time.monotonic())

    def _execute(self, batch: _Batch) -> None:
        tasks = batch.tasks
        try:
            if len(tasks) == 1:
                tasks[0].result = batch.model(dict(tasks[0].feeds))
            else:
                self._merged(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(tasks) == 1:
                tasks[0].error = exc
            else:
                self._one_by_one(batch)
        with self._cond:
            self.batches_run += 1
        for task in tasks:
            task.done.set()

    def _merged(self, batch: _Batch) -> None:
        total = self._padded(batch.rows)
        merged = {}
        for key in batch.tasks[0].feeds:
            parts = [t.feeds[key] for t in batch.tasks]
            if total > batch.rows:
                parts.append(_zeros(parts[0], total - batch.rows))
            merged[key] = np.concatenate(parts, axis=0)
        outputs = batch.model(merged)
        start = 0
        for task in batch.tasks:
            task.result = {k: (v[start:start + task.rows] if v.ndim and v.shape[0] == total
                               else v) for k, v in outputs.items()}
            start += task.rows

    def _one_by_one(self, batch: _Batch) -> None:
        for task in batch.tasks:
            try:
                task.result = batch.model(dict(task.feeds))
            except BaseException as exc:  # noqa: BLE001 - this request's own error
                task.error = exc

    def _padded(self, rows: int) -> int:
        for size in self.options.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def stop(self) -> None:
        """Run what is queued, then end the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()


def _zeros(like: np.ndarray, rows: int) -> np.ndarray:
    pad = np.zeros((rows, *like.shape[1:]), dtype=like.dtype)
    if like.dtype == object:
        pad[...] = b""
    return pad

