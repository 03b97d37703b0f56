"""Verification of the messages SNS POSTs to the daemon (design §4.2).

A message is trusted only after all of these hold, in this order:

1. the body is JSON within bounds (size, nesting depth: ``core.json_bounds``; a 100,000-deep
   array is refused, not a ``RecursionError``), an object of a known ``Type`` with a supported ``SignatureVersion``
   ("1" = SHA1withRSA, "2" = SHA256withRSA) and every field that type signs, as strings;
2. ``SigningCertURL`` is an ``https`` URL of an SNS host (``sns.<region>.amazonaws.com`` or
   ``.amazonaws.com.cn``) naming a ``.pem`` file - refused before anything is fetched;
3. the ``Signature`` (PKCS#1 v1.5) verifies over AWS's canonical string with that
   certificate's public key;
4. ``TopicArn`` is our topic and ``Timestamp`` is recent (not older than ``max_age_s``,
   not more than five minutes ahead).

Certificate validity dates are not checked: the certificate is trusted because it was
served over TLS by an SNS host (or placed in the operator's certificate directory).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.core.json_bounds import JsonRefused, loads_bounded
from reconciler.errors import ConfigError, PermanentError, TransientError

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The fields each type signs, in AWS's canonical (byte-wise sorted) order. ``Subject`` is
# signed for a Notification only when the message carries one.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    UNSUBSCRIBE_CONFIRMATION: (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL_SIGNED_FIELDS = frozenset({"Subject"})
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_CERT_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 5.0

_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
CERT_URL = re.compile(
    rf"https://sns\.{_REGION}\.amazonaws\.com(?:\.cn)?/(?:{_SEGMENT}/)*{_SEGMENT}\.pem")


class SnsRejected(Exception):
    """A message we refuse. ``reason`` is a short machine string (``malformed``,
    ``signature_version``, ``cert_url``, ``cert``, ``cert_unavailable``, ``bad_signature``,
    ``topic``, ``stale``); ``retryable`` is true only when the sender should try again
    (the certificate could not be fetched right now)."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


def check_cert_url(url: object) -> str:
    """Return ``url`` if it names a certificate on an SNS host, else raise ``cert_url``."""
    if not isinstance(url, str) or not CERT_URL.fullmatch(url):
        raise SnsRejected("cert_url", f"SigningCertURL is not an SNS certificate URL: {url!r}")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx then surfaces as an HTTPError, which we refuse


def fetch_certificate(url: str, timeout_s: float = FETCH_TIMEOUT_S,
                      max_bytes: int = MAX_CERT_BYTES) -> bytes:
    """Download a certificate: TLS verified, no redirects, at most ``max_bytes``.

    Raises ``PermanentError`` for a definite refusal (redirect, 4xx, too large) and
    ``TransientError`` when the host could not answer properly (network, timeout, 5xx).
    """
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=timeout_s) as response:
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TransientError(f"certificate host answered {exc.code} for {url}") from exc
        raise PermanentError(f"certificate host answered {exc.code} for {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TransientError(f"could not fetch certificate {url}: {exc}") from exc
    if len(data) > max_bytes:
        raise PermanentError(f"certificate at {url} is larger than {max_bytes} bytes")
    return data


class CertificateStore:
    """SNS signing certificates by URL.

    Lookup order: in-memory cache (bounded, least recently used dropped first); a file in
    ``certs_dir`` named as the URL's last path segment (trusted as is for that URL); then
    ``fetch(url) -> bytes``. A URL off the SNS hosts is refused before any of these.
    """

    def __init__(self, certs_dir: str | Path | None = None,
                 fetch: Callable[[str], bytes] | None = None, max_cached: int = 64) -> None:
        self.certs_dir = Path(certs_dir) if certs_dir else None
        if self.certs_dir is not None and not self.certs_dir.is_dir():
            raise ConfigError(f"SNS certificate directory (CRONCTL_SNS_CERTS) is not a "
                              f"directory: {self.certs_dir}")
        self._fetch = fetch or fetch_certificate
        self._max_cached = max_cached
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        check_cert_url(url)
        with self._lock:
            cert = self._cache.get(url)
            if cert is not None:
                self._cache.move_to_end(url)
                return cert
        cert = _load_pem(self._local(url) or self._download(url), url)
        with self._lock:
            self._cache[url] = cert
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return cert

    def _local(self, url: str) -> bytes | None:
        if self.certs_dir is None:
            return None
        path = self.certs_dir / url.rsplit("/", 1)[1]
        return path.read_bytes() if path.is_file() else None

    def _download(self, url: str) -> bytes:
        try:
            data = self._fetch(url)
        except PermanentError as exc:
            raise SnsRejected("cert", f"certificate refused: {exc}") from exc
        except Exception as exc:  # network trouble: worth a retry by the sender
            raise SnsRejected("cert_unavailable", f"certificate unavailable: {exc}",
                              retryable=True) from exc
        if not isinstance(data, bytes) or len(data) > MAX_CERT_BYTES:
            raise SnsRejected("cert", f"certificate at {url} is not a small PEM file")
        return data


def _load_pem(data: bytes, url: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise SnsRejected("cert", f"not a PEM certificate: {url}") from exc
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise SnsRejected("cert", f"certificate at {url} has no RSA key")
    return cert


def canonical_string(message: dict) -> bytes:
    """AWS's string to sign: ``Key\\nValue\\n`` for each signed field of the message's type."""
    lines = []
    for key in SIGNED_FIELDS[message["Type"]]:
        if key in OPTIONAL_SIGNED_FIELDS and key not in message:
            continue
        lines.append(f"{key}\n{message[key]}\n")
    return "".join(lines).encode("utf-8")


def parse_message(body: bytes) -> dict:
    """Parse and shape-check a body (nothing is trusted yet); raise ``SnsRejected``."""
    try:
        message = loads_bounded(body)
    except JsonRefused as exc:
        raise SnsRejected("malformed", f"body is not JSON within bounds: {exc}") from exc
    if not isinstance(message, dict):
        raise SnsRejected("malformed", "body is not a JSON object")
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise SnsRejected("malformed", f"unknown message Type {kind!r}")
    version = message.get("SignatureVersion")
    if version not in HASHES:
        raise SnsRejected("signature_version", f"unsupported SignatureVersion {version!r}")
    required = [k for k in SIGNED_FIELDS[kind] if k not in OPTIONAL_SIGNED_FIELDS]
    required += ["Signature", "SigningCertURL"]
    missing = [k for k in required if k not in message]
    if missing:
        raise SnsRejected("malformed", f"{kind} lacks {', '.join(missing)}")
    not_text = [k for k in (*SIGNED_FIELDS[kind], "Signature", "SigningCertURL")
                if k in message and not isinstance(message[k], str)]
    if not_text:
        raise SnsRejected("malformed", f"{', '.join(not_text)} must be strings")
    return message


class SnsVerifier:
    """Verifies SNS messages for one topic. ``verify`` returns the parsed message only when
    signature, topic and freshness all hold; otherwise it raises ``SnsRejected``."""

    def __init__(self, topic_arn: str, certs: CertificateStore, max_age_s: int = 3600,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.topic_arn = topic_arn
        self.certs = certs
        self.max_age = timedelta(seconds=max_age_s)
        self.clock = clock

    def verify(self, body: bytes) -> dict:
        message = parse_message(body)
        self._check_signature(message)
        # Only now is any field trustworthy.
        if message["TopicArn"] != self.topic_arn:
            raise SnsRejected("topic", f"message for topic {message['TopicArn']}, "
                                       f"expected {self.topic_arn}")
        self._check_fresh(message["Timestamp"])
        return message

    def _check_signature(self, message: dict) -> None:
        cert = self.certs.get(message["SigningCertURL"])
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SnsRejected("bad_signature", "Signature is not base64") from exc
        algorithm = HASHES[message["SignatureVersion"]]()
        try:
            cert.public_key().verify(signature, canonical_string(message),
                                     padding.PKCS1v15(), algorithm)
        except InvalidSignature as exc:
            raise SnsRejected("bad_signature", "signature does not verify") from exc

    def _check_fresh(self, timestamp: str) -> None:
        try:
            sent = datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise SnsRejected("malformed", f"bad Timestamp {timestamp!r}") from exc
        if sent.tzinfo is None:
            raise SnsRejected("malformed", f"Timestamp without time zone {timestamp!r}")
        now = self.clock()
        if sent < now - self.max_age:
            raise SnsRejected("stale", f"message sent at {timestamp} is too old")
        if sent > now + MAX_FUTURE_SKEW:
            raise SnsRejected("stale", f"message sent at {timestamp} is in the future")
