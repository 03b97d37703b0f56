"""Benchmarks of cronctl against a moto server in its own process on loopback: each row's AWS
calls (counted client-side) and wall time beside its floor measured in the same run (the
fewest calls the operation needs, made with raw boto3), for reconcile passes, a simulated
apply under AWS's default quotas, dispatch, the consumer and the daemon's memory.

Run with ``python -m bench`` (``--quick`` for the smaller sizes); it writes
``bench/results.json`` and ``bench/RESULTS.md``.
"""
