"""The epoch's data counters across a resume with several DataLoader workers (elements.train.loop.DataPosition)."""

from elements.data.sources import DataStats
from elements.train.loop import DataPosition


def _batch(worker: int, position: int, yielded: int, corrupt: int = 0) -> dict:
    return {
        "worker": worker,
        "position": position,
        "stats": {**DataStats().as_dict(), "yielded": yielded, "corrupt": corrupt},
    }


def test_resumed_counts_include_workers_that_have_not_given_a_batch_yet():
    # four workers each gave one batch of 2 before the checkpoint (worker 3 also skipped a corrupt record)
    before = DataPosition()
    for w in range(4):
        before.record(_batch(w, position=1, yielded=2, corrupt=int(w == 3)))
    state = {"rank": before.rank_state(num_workers=4)}
    assert DataStats.total(list(before.epoch_stats().values()))["yielded"] == 8

    # the resumed run: workers count from their start positions; only workers 0 and 1 have given a batch so far
    after = DataPosition.resumed(state, num_workers=4)
    after.record(_batch(0, position=3, yielded=2))
    after.record(_batch(1, position=3, yielded=2))
    total = DataStats.total(list(after.epoch_stats().values()))
    assert total["yielded"] == 12 and total["corrupt"] == 1  # 8 before the stop + 4 after, as without the stop
    assert after.rank_state(num_workers=4)["stats"][2]["yielded"] == 2  # the next checkpoint keeps worker 2's count
    assert after.rank_state(num_workers=4)["positions"] == {0: 3, 1: 3, 2: 1, 3: 1}


def test_a_changed_worker_count_restarts_the_epoch():
    before = DataPosition()
    before.record(_batch(0, position=1, yielded=2))
    after = DataPosition.resumed({"rank": before.rank_state(num_workers=2)}, num_workers=4)
    assert after.positions == {} and after.epoch_stats() == {}
