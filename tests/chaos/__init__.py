"""Chaos tests: real ``cronctl serve`` processes talking to the moto server through a
fault-injecting proxy (``tests.support.faultproxy``), driven by signed SNS deliveries
(``tests.support.sns_delivery``), killed with SIGKILL mid-call (``tests.support.serve_process``).
Fixtures are in ``conftest.py``; ``namespace.py`` prepares a namespace with the real control
plane; ``test_harness.py`` proves the tools themselves."""
