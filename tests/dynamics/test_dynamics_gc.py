"""The publish raises the young-generation GC threshold only while it runs."""

from __future__ import annotations

import gc

from customer360.dynamics.engine import fewer_collections


def test_threshold_raised_during_runs_and_restored_after_the_last() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        with fewer_collections():
            assert gc.get_threshold()[0] == 20_000
            with fewer_collections():  # overlapping runs in one process
                assert gc.get_threshold()[0] == 20_000
            assert gc.get_threshold()[0] == 20_000  # the outer run is still going
        assert gc.get_threshold() == (700, before[1], before[2])
        gc.set_threshold(50_000, before[1], before[2])  # a process that asked for more keeps it
        with fewer_collections():
            assert gc.get_threshold()[0] == 50_000
    finally:
        gc.set_threshold(*before)
