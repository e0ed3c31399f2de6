"""Request merging: concurrent small requests are scored together in one model call
(:class:`Batcher`).

Why merging: a model call costs about the same for 1 row as for 64 (build_features and the
300-tree predictor have a fixed per-call cost), so single-row requests that arrive while a call
runs are queued and predicted together in the next call. Rows do not influence each other, so
scores are identical to one call per row (tests/test_serve.py checks this exactly).
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress

import numpy as np

from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.serving.model_service import Columns


def concat_columns(parts: Sequence[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {c: [v for part in parts for v in part[c]] for c in RAW_COLUMNS}


class Batcher:
    """Predicts queued requests together: whatever arrived while the previous model call ran
    goes into the next one (up to ``merge_rows`` rows), so a lone request never waits."""

    def __init__(
        self,
        predict: Callable[[Columns], np.ndarray],
        merge_rows: int,
        on_call: Callable[[int], None],
    ) -> None:
        self._predict = predict
        self._merge_rows = merge_rows
        self._on_call = on_call
        self._queue: deque[tuple[Columns, int, asyncio.Future[np.ndarray]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def predict(self, columns: Columns, rows: int) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        assert self._wakeup is not None
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append((columns, rows, future))
        self._wakeup.set()
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._wakeup, self._queue = loop, asyncio.Event(), deque()
        self._task = loop.create_task(self._run(), name="flightdelay-batcher")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # One more turn of the loop: requests already read from their sockets join this call.
            await asyncio.sleep(0)
            while self._queue:
                self._call(self._take())
                await asyncio.sleep(0)  # answer, and read what arrived meanwhile

    def _take(self) -> list[tuple[Columns, int, asyncio.Future[np.ndarray]]]:
        items = [self._queue.popleft()]
        rows = items[0][1]
        while self._queue and rows + self._queue[0][1] <= self._merge_rows:
            item = self._queue.popleft()
            items.append(item)
            rows += item[1]
        return [item for item in items if not item[2].cancelled()]

    def _call(self, items: list[tuple[Columns, int, asyncio.Future[np.ndarray]]]) -> None:
        if not items:
            return
        try:
            scores = self._predict(concat_columns([columns for columns, _, _ in items]))
            self._on_call(sum(rows for _, rows, _ in items))
        except Exception:
            if len(items) > 1:  # isolate the failing request: the others still get answers
                for item in items:
                    self._call([item])
                return
            _, _, future = items[0]
            if not future.done():
                future.set_exception(sys.exc_info()[1] or RuntimeError("prediction failed"))
            return
        start = 0
        for _, rows, future in items:
            if not future.done():
                future.set_result(scores[start : start + rows])
            start += rows
