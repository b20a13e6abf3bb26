"""A durable, ordered queue of tracking writes, so an MLflow outage loses nothing.

Every write the sweep makes to MLflow (metrics, tags, artifacts, run statuses) is first appended
to a journal on disk (``ops.jsonl`` in the sweep's storage path, fsynced; artifact files are copied
next to it), then applied in order. When the tracking server does not answer, the writes stay in
the journal and are tried again with bounded exponential backoff as the sweep goes on; a driver
that dies meanwhile leaves them there, and the next run of the sweep replays them first.

Applying an operation twice has the effect of applying it once (metrics are skipped for steps
the run already has, tags and statuses are set, artifacts overwrite themselves), so the journal
only needs to record how far it got after each operation, and a crash in between is harmless.
An operation the server refuses while it is answering (a bad request, not an outage) is tried
three times, then moved to ``rejected.jsonl`` with the error, and the queue goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # seconds between attempts while the server is down
ATTEMPTS = 3  # tries of one operation the server refuses while answering


class Outbox:
    """Journal of pending operations, applied in order by ``apply``.

    Args:
        directory: where the journal, the applied counter and spooled artifacts live.
        apply: performs one operation against the tracking store (raises on failure).
        reachable: says whether the tracking store answers at all (an outage, when not).
        describe: names the store in messages (its URI).
        warn: where the one-line outage warning goes.
    """

    def __init__(
        self,
        directory: Path,
        apply: Callable[[dict[str, Any]], None],
        reachable: Callable[[], bool],
        describe: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.journal = self.directory / "ops.jsonl"
        self.applied_path = self.directory / "applied"
        self.rejected_path = self.directory / "rejected.jsonl"
        self.spool = self.directory / "files"
        self._apply = apply
        self._reachable = reachable
        self.describe = describe
        self._warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.applied = self._read_applied()
        self.queue: list[dict[str, Any]] = [
            op for op in self._read_journal() if op["seq"] > self.applied
        ]
        last = max((op["seq"] for op in self.queue), default=0)
        self.next_seq = max(self.applied, last) + 1
        self.outage_since: float | None = None
        self.next_attempt = 0.0
        self.failures = 0  # consecutive failed attempts in this outage
        self.attempts: dict[int, int] = {}
        self.replayed = len(self.queue)  # left by an earlier run

    # ----- the journal --------------------------------------------------------------------
    def _read_applied(self) -> int:
        try:
            return int(self.applied_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _read_journal(self) -> list[dict[str, Any]]:
        if not self.journal.is_file():
            return []
        ops = []
        for line in self.journal.read_text().splitlines():
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash while it was written: nothing after it
        return ops

    def _mark_applied(self, seq: int) -> None:
        tmp = self.applied_path.with_name("applied.tmp")
        tmp.write_text(str(seq))
        tmp.replace(self.applied_path)
        self.applied = seq

    def _compact(self) -> None:
        """Everything applied: drop the journal (the counter keeps the sequence going)."""
        self.journal.unlink(missing_ok=True)
        shutil.rmtree(self.spool, ignore_errors=True)

    def put(self, op: dict[str, Any], file: Path | None = None) -> None:
        """Append an operation durably (a file it uploads is copied into the spool first)."""
        op = {**op, "seq": self.next_seq}
        self.next_seq += 1
        if file is not None:
            target = self.spool / str(op["seq"]) / Path(file).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            op["file"] = str(target.relative_to(self.directory))
        with open(self.journal, "a") as journal:
            journal.write(json.dumps(op, default=float) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        self.queue.append(op)

    def path_of(self, op: dict[str, Any]) -> Path:
        return self.directory / op["file"]

    def __len__(self) -> int:
        return len(self.queue)

    # ----- applying -----------------------------------------------------------------------
    def flush(self) -> bool:
        """Apply what is queued unless the store is down and it is not yet time to retry.

        Returns True when the queue is empty.
        """
        if not self.queue:
            return True
        if self.outage_since is not None and time.monotonic() < self.next_attempt:
            return False
        while self.queue:
            op = self.queue[0]
            try:
                self._apply(op)
            except Exception as exc:  # noqa: BLE001 - any failure: outage or refusal, told apart below
                if not self._reachable():
                    self._outage(exc)
                    return False
                tries = self.attempts.get(op["seq"], 0) + 1
                self.attempts[op["seq"]] = tries
                if tries < ATTEMPTS:
                    return False
                self._reject(op, exc)
            self._done(op)
        self._recovered()
        self._compact()
        return True

    def drain(self, timeout: float) -> bool:
        """Flush, waiting out an outage for up to ``timeout`` seconds; True when all applied."""
        deadline = time.monotonic() + timeout
        while not self.flush():
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(max(0.05, min(self.next_attempt - now, deadline - now, 1.0)))
        return True

    def _done(self, op: dict[str, Any]) -> None:
        self.queue.pop(0)
        self._mark_applied(op["seq"])
        self.attempts.pop(op["seq"], None)
        if "file" in op:
            shutil.rmtree(self.path_of(op).parent, ignore_errors=True)

    def _outage(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since = now
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self._warn(
                f"WARNING: MLflow tracking store {self.describe} is not answering "
                f"({type(exc).__name__}: {first}); the sweep goes on and keeps its tracking "
                f"writes in {self.journal}, replayed in order when the store is back "
                f"(retrying every {BACKOFF[0]:g}-{BACKOFF[-1]:g} s)"
            )
        self.next_attempt = now + BACKOFF[min(self.failures, len(BACKOFF) - 1)]
        self.failures += 1

    def _recovered(self) -> None:
        if self.outage_since is not None:
            down = time.monotonic() - self.outage_since
            print(
                f"MLflow tracking store {self.describe} is back after {down:.0f} s; "
                f"the queued writes are replayed",
                file=sys.stderr,
                flush=True,
            )
        self.outage_since, self.failures = None, 0

    def _reject(self, op: dict[str, Any], exc: Exception) -> None:
        record = {**op, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        if "file" in op and self.path_of(op).is_file():
            kept = self.directory / "rejected_files" / str(op["seq"])
            kept.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.path_of(op), kept / self.path_of(op).name)
            record["file"] = str((kept / self.path_of(op).name).relative_to(self.directory))
        with open(self.rejected_path, "a") as rejected:
            rejected.write(json.dumps(record, default=float) + "\n")
        self._warn(
            f"WARNING: MLflow refused a {op.get('kind')} write {ATTEMPTS} times ({exc}); "
            f"kept in {self.rejected_path}"
        )
