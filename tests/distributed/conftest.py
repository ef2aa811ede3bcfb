import pytest

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """Two worker processes x 1 thread on loopback (the CI setting), shared per module."""
    from tastebud.distributed import local_cluster

    with local_cluster(n_workers=2, threads_per_worker=1) as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c
