"""Counting every AWS call a command makes, whichever ``AwsClients`` it builds."""

from __future__ import annotations

import pytest

from reconciler.adapters.aws import CallCounter


@pytest.fixture
def counted(monkeypatch) -> CallCounter:
    """Every AwsClients made during the test counts into one CallCounter (all threads)."""
    import reconciler.adapters.aws as aws

    counter = CallCounter()
    real = aws.AwsClients

    class Counted(real):
        def __init__(self, settings, counter_=None):
            super().__init__(settings, counter)

    monkeypatch.setattr(aws, "AwsClients", Counted)
    return counter
