"""Benchmarks of cronctl against an in-process moto server on loopback: AWS API calls per
operation and wall time of reconcile passes, dispatch latency and consumer throughput.

Run with ``python -m bench`` (``--quick`` for the smallest sizes); the output is Markdown.
"""
