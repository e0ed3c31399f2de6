"""Request merging: concurrent small requests are checked and scored together in one model
call (:class:`Batcher`).

Why merging: a model call costs about the same for 1 row as for 64 (build_features and the
300-tree predictor have a fixed per-call cost), and so does the row check (one numpy pass per
rule), so single-row requests that arrive while a call runs are queued, checked and predicted
together in the next call. Rows do not influence each other, so scores and row errors are
identical to one call per request (tests/serving/test_serve.py checks this exactly); a request
with a row error is answered with its own errors (:class:`InvalidRowsError`) and left out of the
model call.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress

import numpy as np

from flightdelay.core.flights import RAW_COLUMNS
from flightdelay.serving.model_service import Columns, RowError


class InvalidRowsError(Exception):
    """A request's rows broke the row rules: its errors, rows numbered within the request."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(f"{len(errors)} row error(s)")
        self.errors = list(errors)


def concat_columns(parts: Sequence[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {c: [v for part in parts for v in part[c]] for c in RAW_COLUMNS}


class Batcher:
    """Predicts queued requests together: whatever arrived while the previous model call ran
    goes into the next one (up to ``merge_rows`` rows), so a lone request never waits.

    ``check`` (optional): the row rules, run once on the merged rows before the model call
    (errors located ``(row, field)`` in the merged rows); a request with errors gets
    :class:`InvalidRowsError` instead of scores."""

    def __init__(
        self,
        predict: Callable[[Columns], np.ndarray],
        merge_rows: int,
        on_call: Callable[[int], None],
        check: Callable[[Columns], Sequence[RowError]] | None = None,
    ) -> None:
        self._predict = predict
        self._check = check
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
        if self._check is not None:
            items = self._refuse_invalid(items)
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

    def _refuse_invalid(
        self, items: list[tuple[Columns, int, asyncio.Future[np.ndarray]]]
    ) -> list[tuple[Columns, int, asyncio.Future[np.ndarray]]]:
        """The items whose rows pass the check; the others are answered InvalidRowsError (or the
        check's own exception, a request at a time)."""
        assert self._check is not None
        if not items:
            return items
        try:
            errors = self._check(concat_columns([columns for columns, _, _ in items]))
        except Exception:
            if len(items) > 1:  # isolate the request the check fails on
                return [kept for item in items for kept in self._refuse_invalid([item])]
            _, _, future = items[0]
            if not future.done():
                future.set_exception(sys.exc_info()[1] or RuntimeError("row check failed"))
            return []
        if not errors:
            return items
        kept, start = [], 0
        for item in items:
            _, rows, future = item
            own = [
                RowError((int(e.loc[0]) - start, *e.loc[1:]), e.msg, e.type)
                for e in errors
                if start <= int(e.loc[0]) < start + rows
            ]
            if not own:
                kept.append(item)
            elif not future.done():
                future.set_exception(InvalidRowsError(own))
            start += rows
        return kept
