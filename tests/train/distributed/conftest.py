import pytest


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (loopback, 2 CPUs, the smallest object store Ray accepts) for the whole session."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
