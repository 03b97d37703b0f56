"""``python -m bench.moto_server -H HOST -p PORT``: moto's server, with the emulator adjustments
that the tests and the embedded mode run with (``reconciler.service.embedded.emulator``):
DynamoDB requests handled one at a time (conditional writes atomic, as on AWS) and
``TransactWriteItems`` costing what its items cost (moto deep-copies every table a
transaction touches: time in proportion to the tables' size, and HTTP 500 when a concurrent
request changes one meanwhile; AWS has neither). Everything else is moto's own."""

from __future__ import annotations

import sys

from reconciler.service.embedded.emulator import atomic_dynamodb, cheap_transactions


def main(argv: list[str] | None = None) -> None:
    atomic_dynamodb()
    cheap_transactions()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
