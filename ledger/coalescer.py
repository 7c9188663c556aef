"""Single requests coalesced into shared batch transactions, as TigerBeetle does.

Many callers each submit a few events; a writer thread takes everything waiting (up to one batch), runs it
as one `create_transfers` request, and answers every caller only after that transaction commits. Each
caller's events keep their order and their own results, and a caller's linked chain never joins another
caller's: a submission that ends inside a chain is sent as a batch of its own.
"""

import queue
import threading
import time
from collections.abc import Sequence

from ledger.limits import BATCH_EVENTS_MAX
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.transfers import Transfer, TransferFlags

# How long `close()` waits for writers to drain.
CLOSE_TIMEOUT_S = 30.0
# How long a writer waits for more submissions before it starts a batch (adds at most this much latency).
LINGER_S = 0.0005
LINGER_S_MAX = 0.01


class _Submission:
    """One caller's events and, once its batch has committed, their results. The caller waits on `done`
    (a lock the writer releases): the cheapest wake-up CPython has, where a Future costs a condition
    variable and several Python calls on each side, paid per single request."""

    __slots__ = ("done", "error", "events", "results")

    def __init__(self, events: Sequence[Transfer]) -> None:
        self.events = events
        self.results: list[CreateTransferResult] = []
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


_STOP = _Submission(events=())


class TransferCoalescer:
    def __init__(
        self,
        ledger: Ledger,
        writers: int = 1,
        batch_events_max: int = BATCH_EVENTS_MAX,
        linger_s: float = LINGER_S,
    ) -> None:
        assert 1 <= batch_events_max <= BATCH_EVENTS_MAX
        assert 0 <= linger_s <= LINGER_S_MAX
        self.ledger = ledger
        self.linger_s = linger_s
        self.batch_events_max = batch_events_max
        self._queue: queue.SimpleQueue[_Submission] = queue.SimpleQueue()
        self._writers = [
            threading.Thread(target=self._write_loop, name=f"ledger-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for writer in self._writers:
            writer.start()

    def submit(self, events: Sequence[Transfer]) -> list[CreateTransferResult]:
        """Apply `events` (in order, in some shared transaction) and return their results once committed."""
        if not events:
            return []
        last_flags = events[-1].flags
        if len(events) > self.batch_events_max or (
            isinstance(last_flags, int) and last_flags & TransferFlags.LINKED
        ):
            return self.ledger.create_transfers(events)
        submission = _Submission(events)
        self._queue.put(submission)
        submission.done.acquire()
        if submission.error is not None:
            raise submission.error
        return submission.results

    def close(self) -> None:
        for _ in self._writers:
            self._queue.put(_STOP)
        for writer in self._writers:
            writer.join(CLOSE_TIMEOUT_S)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            # Linger briefly: callers answered by the previous batch are re-submitting right now, and one
            # batch of thirty costs barely more than a batch of ten.
            time.sleep(self.linger_s)
            group = [first]
            count = len(first.events)
            stop_after = False
            while count < self.batch_events_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                if count + len(item.events) > self.batch_events_max:
                    self._queue.put(item)  # it starts the next batch
                    break
                group.append(item)
                count += len(item.events)
            self._write(group)
            if stop_after:
                return

    def _write(self, group: list[_Submission]) -> None:
        events = [event for submission in group for event in submission.events]
        try:
            results = self.ledger.create_transfers(events)
        except BaseException as error:  # every waiting caller must learn the outcome
            for submission in group:
                submission.error = error
                submission.done.release()
            return
        offset = 0
        for submission in group:
            end = offset + len(submission.events)
            submission.results = results[offset:end]
            offset = end
            submission.done.release()
