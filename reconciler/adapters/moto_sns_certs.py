"""Signing certificates of an in-process moto SNS (embedded mode and tests).

moto signs every HTTP delivery with a fresh certificate and keeps its PEM in the SNS
backend of the default account, keyed by the file name of the ``SigningCertURL``; that URL
points at AWS and cannot be fetched. ``moto_cert_fetcher`` reads the PEM from the backend
instead, so it works only where moto runs in this process (``ThreadedMotoServer``).
"""

from __future__ import annotations

import re

from reconciler.errors import NotFound, PermanentError

_MOTO_CERT_URL = re.compile(
    r"https://sns\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<key>SimpleNotificationService-[0-9a-f]+\.pem)")


def moto_cert_fetcher(url: str) -> bytes:
    """Return the PEM moto signed with for ``url``; ``NotFound`` if moto never issued it."""
    match = _MOTO_CERT_URL.fullmatch(url)
    if not match:
        raise PermanentError(f"not a moto SNS certificate URL: {url!r}")
    # Imported here: moto is an optional (embedded/test) dependency.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    backend = sns_backends[DEFAULT_ACCOUNT_ID][match["region"]]
    pem = backend._message_public_keys.get(match["key"])
    if pem is None:
        raise NotFound(f"moto issued no certificate {match['key']} in {match['region']}")
    return pem
