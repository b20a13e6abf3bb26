"""The durable tracking queue: nothing is lost when MLflow is down, or when the driver dies."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from sweep.outbox import ATTEMPTS, Outbox
from sweep.store import TAG_TRIAL
from sweep.tracking import SweepTracker, TrackingUnavailable


class FlakyStore:
    """Applies operations into a list; ``down`` makes every call fail like an outage."""

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.down = False
        self.refuse: set[int] = set()

    def apply(self, op):
        if self.down:
            raise ConnectionError("connection refused")
        if op["value"] in self.refuse:
            raise ValueError(f"bad value {op['value']}")
        self.applied.append(op["value"])

    def reachable(self):
        return not self.down


def box(tmp_path, store, warnings=None):
    return Outbox(
        tmp_path / "queue",
        store.apply,
        store.reachable,
        "fake://store",
        warn=(warnings.append if warnings is not None else None),
    )


def test_writes_wait_out_an_outage_and_land_in_order(tmp_path):
    store, warnings = FlakyStore(), []
    outbox = box(tmp_path, store, warnings)
    outbox.put({"value": 0})
    assert outbox.flush() and store.applied == [0]
    store.down = True
    for value in range(1, 6):
        outbox.put({"value": value})
        outbox.flush()
    assert store.applied == [0] and len(outbox) == 5
    # one warning line for the whole outage, naming the store and where the writes wait
    assert len(warnings) == 1 and "fake://store" in warnings[0] and "ops.jsonl" in warnings[0]
    store.down = False
    assert outbox.drain(timeout=60)
    assert store.applied == [0, 1, 2, 3, 4, 5]
    assert not (tmp_path / "queue" / "ops.jsonl").exists()


def test_a_driver_that_dies_leaves_its_writes_for_the_next_run(tmp_path):
    store = FlakyStore()
    store.down = True
    first = box(tmp_path, store, [])
    artifact = tmp_path / "structure.json"
    artifact.write_text('{"a": 1}')
    for value in range(4):
        first.put({"value": value}, artifact if value == 2 else None)
        first.flush()
    artifact.unlink()  # the trial's temporary checkpoint is gone by now
    # the process dies (no drain); a line half-written at the moment of the crash is dropped
    with open(tmp_path / "queue" / "ops.jsonl", "a") as journal:
        journal.write('{"value": 99, "se')
    store.down = False
    second = box(tmp_path, store, [])
    assert len(second) == 4
    spooled = second.path_of(second.queue[2])
    assert json.loads(spooled.read_text()) == {"a": 1}
    assert second.drain(timeout=10)
    assert store.applied == [0, 1, 2, 3]
    # and the numbering goes on after what was applied
    second.put({"value": 4})
    assert second.queue[0]["seq"] == 5


def test_an_operation_applied_just_before_a_crash_is_not_lost_or_reordered(tmp_path):
    store = FlakyStore()
    first = box(tmp_path, store)
    store.down = True
    for value in range(3):
        first.put({"value": value})
    store.down = False
    # op 0 applied, then the driver died before recording it: it is applied again (the
    # tracker's writes are idempotent), and the rest follow in order
    store.apply(first.queue[0])
    second = box(tmp_path, store)
    assert second.drain(timeout=10)
    assert store.applied == [0, 0, 1, 2]


def test_a_refused_write_is_kept_aside_and_the_queue_goes_on(tmp_path):
    store, warnings = FlakyStore(), []
    store.refuse = {1}
    outbox = box(tmp_path, store, warnings)
    for value in range(3):
        outbox.put({"value": value})
    assert outbox.drain(timeout=10)
    assert store.applied == [0, 2]
    rejected = [json.loads(line) for line in (tmp_path / "queue" / "rejected.jsonl").open()]
    assert [r["value"] for r in rejected] == [1] and "bad value 1" in rejected[0]["error"]
    assert len(warnings) == 1 and f"{ATTEMPTS} times" in warnings[0]


def test_tracker_replays_an_outage_after_a_driver_death(private_mlflow_server, tmp_path):
    """Real server: stopped while the tracker writes, the tracker dies, the next one replays."""
    server = private_mlflow_server
    queue = tmp_path / "queue"
    tracker = SweepTracker(server.uri, "outage", queue_dir=queue)
    run_id = tracker.start("t1", {"algorithm": "gamma"})
    tracker.log_metrics("t1", {"learn/cost": 10.0}, step=1)
    assert len(tracker.outbox) == 0
    server.stop()
    structure = tmp_path / "structure.json"
    structure.write_text('{"schema": 1}')
    tracker.log_metrics("t1", {"learn/cost": 8.0}, step=2)
    tracker.log_metrics("t1", {"learn/cost": 8.0}, step=2)  # a retried epoch reports again
    tracker.start("t2", {"algorithm": "gamma"})  # a run created during the outage
    tracker.log_metrics("t2", {"learn/cost": 5.0}, step=1)
    tracker.set_tags("t1", {"morphsweep.note": "written while down"})
    tracker.log_artifact("t1", structure)
    tracker.finish("t1", "FINISHED")
    assert len(tracker.outbox) == 7
    with pytest.raises(TrackingUnavailable, match="replayed, in order"):
        tracker.drain(timeout=2)
    del tracker  # the driver dies with the writes queued
    structure.unlink()
    server.start()
    again = SweepTracker(server.uri, "outage", queue_dir=queue)
    assert len(again.outbox) == 0
    client = MlflowClient(server.uri)
    history = client.get_metric_history(run_id, "learn/cost")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 8.0)]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["morphsweep.note"] == "written while down"
    assert [a.path for a in client.list_artifacts(run_id)] == ["structure.json"]
    children = again.children()
    assert sorted(children) == ["t1", "t2"]
    assert children["t2"].data.tags[TAG_TRIAL] == "t2"
    assert children["t2"].data.params["algorithm"] == "gamma"
    t2 = client.get_metric_history(children["t2"].info.run_id, "learn/cost")
    assert [(m.step, m.value) for m in t2] == [(1, 5.0)]
