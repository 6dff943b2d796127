"""Fixtures more than one test module uses."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster (two worker processes) for the suite and sweep tests that run on a
    scheduler; one per test module, skipped where distributed is not installed."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local
