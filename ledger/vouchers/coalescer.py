"""Single redemptions coalesced into shared transactions (as `ledger.coalescer` does for transfers).

Terminals each send one request; a writer thread takes everything waiting (up to `submissions_max`), redeems
it in one transaction, and answers every terminal only after that transaction commits, each with its own
outcomes and receipt. If a shared transaction fails as a whole, its submissions are retried one by one, so
one bad submission never takes its neighbours' answers with it.

`redeem` blocks the calling thread until the answer; `submit` gives the answer's `Future` instead, which
an event loop awaits without holding a thread (``asyncio.wrap_future``). A submission whose future is
cancelled before a writer takes it is never redeemed; once taken, it is redeemed and cannot be cancelled.
"""

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final

from ledger.vouchers.receipts import Receipt, RedemptionOutcome
from ledger.vouchers.redemption import Submission
from ledger.vouchers.service import VoucherLedger

SUBMISSIONS_MAX: Final = 256
LINGER_S: Final = 0.0005
CLOSE_TIMEOUT_S: Final = 30.0
Answer = tuple[list[RedemptionOutcome], Receipt]


@dataclass(slots=True)
class _Waiting:
    submission: Submission | None
    answer: Future[Answer] = field(default_factory=Future)


class RedemptionCoalescer:
    def __init__(
        self, vouchers: VoucherLedger, writers: int = 2, submissions_max: int = SUBMISSIONS_MAX
    ) -> None:
        assert writers >= 1 and 1 <= submissions_max <= SUBMISSIONS_MAX
        self.vouchers = vouchers
        self.submissions_max = submissions_max
        self._queue: queue.Queue[_Waiting] = queue.Queue()
        self._writers = [
            threading.Thread(target=self._write_loop, name=f"redemption-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for writer in self._writers:
            writer.start()

    def redeem(self, submission: Submission) -> Answer:
        """Redeem one terminal's submission in some shared transaction; returns once it has committed."""
        return self.submit(submission).result()

    def submit(self, submission: Submission) -> "Future[Answer]":
        """Queue one terminal's submission; the future is answered once its shared transaction commits."""
        waiting = _Waiting(submission)
        self._queue.put(waiting)
        return waiting.answer

    def close(self) -> None:
        for _ in self._writers:
            self._queue.put(_Waiting(None))
        for writer in self._writers:
            writer.join(CLOSE_TIMEOUT_S)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first.submission is None:
                return
            time.sleep(LINGER_S)  # terminals answered a moment ago are sending their next request now
            group = [first]
            stop = False
            while len(group) < self.submissions_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item.submission is None:
                    stop = True
                    break
                group.append(item)
            # Cancelled while waiting (its caller went away): dropped. The others can no longer be cancelled.
            taken = [waiting for waiting in group if waiting.answer.set_running_or_notify_cancel()]
            if taken:
                self._write(taken)
            if stop:
                return

    def _write(self, group: Sequence[_Waiting]) -> None:
        try:
            answers = self.vouchers.redeem([w.submission for w in group if w.submission is not None])
        except Exception as error:
            if len(group) == 1:  # the caller must learn the outcome, whatever it is
                group[0].answer.set_exception(error)
                return
            for waiting in group:  # retried alone: one bad submission must not fail its neighbours
                self._write([waiting])
            return
        for waiting, answer in zip(group, answers, strict=True):
            waiting.answer.set_result(answer)
