"""Test support for SNS: the genuine AWS vectors, a signer for our own test messages,
a counting certificate fetch, and plain HTTP clients for the daemon's endpoint."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def _fixtures_dir() -> Path:
    candidates = [os.environ.get("CRONCTL_FIXTURES", ""),
                  str(Path(__file__).resolve().parents[1] / "fixtures")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "sns" / "manifest.json").is_file():
            return Path(candidate) / "sns"
    raise FileNotFoundError(f"SNS fixtures not found in any of {candidates}")


SNS_FIXTURES = _fixtures_dir()
CERTS_DIR = SNS_FIXTURES / "certs"


@dataclass(frozen=True)
class Vector:
    """One entry of the fixtures' manifest.json, loaded."""

    file: str
    body: bytes
    message: dict
    cert: Path
    expect: str  # "valid" | "invalid"

    @property
    def sent_at(self) -> datetime:
        return datetime.fromisoformat(self.message["Timestamp"])

    def clock(self, offset: timedelta = timedelta(seconds=30)):
        """A clock standing ``offset`` after the message was sent."""
        now = self.sent_at + offset
        return lambda: now

    def with_changes(self, **changes) -> bytes:
        """The message with fields replaced (``None`` removes a field), as a body."""
        message = dict(self.message)
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        return json.dumps(message).encode()


def vectors() -> list[Vector]:
    manifest = json.loads((SNS_FIXTURES / "manifest.json").read_text())
    loaded = []
    for entry in manifest["vectors"]:
        body = (SNS_FIXTURES / entry["file"]).read_bytes()
        loaded.append(Vector(entry["file"], body, json.loads(body),
                             SNS_FIXTURES / entry["cert"], entry["expect"]))
    return loaded


def vector(file_part: str) -> Vector:
    """The single vector whose file name contains ``file_part``."""
    (found,) = [v for v in vectors() if file_part in v.file]
    return found


class CountingFetch:
    """A certificate fetch function that serves fixed PEMs by URL and counts its calls."""

    def __init__(self, pems: dict[str, bytes] | None = None, error: Exception | None = None):
        self.pems = dict(pems or {})
        self.error = error
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return self.pems[url]


def _canonical(message: dict) -> bytes:
    # Written independently of the code under test, from AWS's documentation.
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


@lru_cache(maxsize=1)
def _key_and_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class TestSigner:
    """Signs messages the way SNS does, with a throwaway key whose certificate is served
    as ``cert_url`` (put ``pem`` in a certificate directory or a fetch function)."""

    __test__ = False  # not a test class
    cert_name = "SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
    cert_url = f"https://sns.us-east-1.amazonaws.com/{cert_name}"

    def __init__(self) -> None:
        self.key, self.pem = _key_and_cert()

    def write_cert(self, directory: Path) -> Path:
        path = directory / self.cert_name
        path.write_bytes(self.pem)
        return path

    def sign(self, message: dict, version: str = "2") -> dict:
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(_canonical(message), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode(),
                "SigningCertURL": self.cert_url}

    def message(self, kind: str, topic_arn: str, sent_at: datetime, **fields) -> dict:
        """A signed message of ``kind`` for ``topic_arn`` sent at ``sent_at``."""
        message = {"Type": kind, "MessageId": "2f3c4a6e-0000-4000-8000-000000000001",
                   "TopicArn": topic_arn, "Message": "{\"cron\": \"demo\"}",
                   "Timestamp": sent_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        if kind != "Notification":
            message["Token"] = "token-0123"
            message["SubscribeURL"] = (f"https://sns.us-east-1.amazonaws.com/?Action="
                                       f"ConfirmSubscription&TopicArn={topic_arn}&Token=token-0123")
            message["Message"] = f"You have chosen to subscribe to the topic {topic_arn}."
        message.update(fields)
        return self.sign(message)


def post(url: str, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, str]:
    """POST ``body`` as SNS does (text/plain); returns (status, body text)."""
    return request(url, "POST", path, body, timeout)


def request(url: str, method: str, path: str, body: bytes | None = None,
            timeout: float = 10.0) -> tuple[int, str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": "text/plain; charset=UTF-8"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def raw_exchange(address: tuple[str, int], data: bytes, timeout: float = 10.0,
                 half_close: bool = False) -> bytes:
    """Send raw bytes (then end the request stream if ``half_close``) and read the whole
    answer until the server closes the connection."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw_response: bytes) -> int:
    """The status code of a raw HTTP response."""
    return int(raw_response.split(b" ", 2)[1])
