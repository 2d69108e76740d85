"""Downpour SGD (Dean et al. 2012, as the paper trained): model replicas, sharded parameter servers,
asynchronous fetch/push, and spatial model parallelism. See docs/distributed.md."""
