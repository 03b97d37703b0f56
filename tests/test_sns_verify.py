"""SNS message verification against genuine AWS vectors and hostile variants."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from reconciler.errors import PermanentError, TransientError
from reconciler.service.http.sns_verify import (
    CertificateStore,
    SnsRejected,
    SnsVerifier,
    check_cert_url,
    fetch_certificate,
)
from tests.support.sns import CERTS_DIR, CountingFetch, TestSigner, vector, vectors

VALID = [v for v in vectors() if v.expect == "valid"]
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def verifier_for(v, fetch=None, certs_dir=CERTS_DIR, offset=timedelta(seconds=30), **kwargs):
    store = CertificateStore(certs_dir, fetch=fetch or CountingFetch())
    return SnsVerifier(v.message["TopicArn"], store, clock=v.clock(offset), **kwargs)


def rejection(verifier: SnsVerifier, body: bytes) -> SnsRejected:
    with pytest.raises(SnsRejected) as caught:
        verifier.verify(body)
    return caught.value


@pytest.mark.parametrize("v", vectors(), ids=lambda v: v.file)
def test_manifest_vectors(v):
    fetch = CountingFetch()
    verifier = verifier_for(v, fetch=fetch)
    if v.expect == "valid":
        assert verifier.verify(v.body) == v.message
    else:
        assert rejection(verifier, v.body).reason == "bad_signature"
    assert fetch.calls == []  # served from the certificate directory


@pytest.mark.parametrize("v", VALID, ids=lambda v: v.file)
def test_genuine_message_fails_with_any_other_cert(v, tmp_path):
    cert_name = v.message["SigningCertURL"].rsplit("/", 1)[1]
    for other in CERTS_DIR.iterdir():
        if other.name == cert_name:
            continue
        shutil.copy(other, tmp_path / cert_name)
        verifier = verifier_for(v, certs_dir=tmp_path)
        assert rejection(verifier, v.body).reason == "bad_signature", other.name


REFUSED_URLS = [
    "https://s3.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
    "https://evil.example@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem?a=b",
    "https://sns.us-east-1.amazonaws.com/x.pem?",
    "https://sns.us-east-1.amazonaws.com/x.pem#frag",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.us-east-1.amazonaws.com/x.pem/",
    "https://sns.us-east-1.amazonaws.com/../x.pem",
    "https://sns.us-east-1.amazonaws.com/%2e%2e/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem\n",
    "https://sns.amazonaws.com/x.pem",
    "https://sns.evil.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.cn.evil.example/x.pem",
    "https://sns.us-east-1.amazonaws.co/x.pem",
    "https://snsXus-east-1.amazonaws.com/x.pem",
    "//sns.us-east-1.amazonaws.com/x.pem",
    "",
    None,  # JSON null (removed field)
    42,
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_cert_urls_off_sns_are_refused_before_any_fetch(url, tmp_path):
    fetch = CountingFetch(error=AssertionError("must not fetch"))
    store = CertificateStore(tmp_path, fetch=fetch)
    v = vector("notification_sigv2")
    verifier = SnsVerifier(v.message["TopicArn"], store, clock=v.clock())
    expected = "cert_url" if isinstance(url, str) else "malformed"
    assert rejection(verifier, v.with_changes(SigningCertURL=url)).reason == expected
    if isinstance(url, str):
        with pytest.raises(SnsRejected) as caught:
            store.get(url)
        assert caught.value.reason == "cert_url"
    assert fetch.calls == []


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.ap-southeast-3.amazonaws.com/dir/SimpleNotificationService-abc.pem",
])
def test_cert_urls_on_sns_hosts_are_fetched(url):
    pem = TestSigner().pem
    fetch = CountingFetch({url: pem})
    assert check_cert_url(url) == url
    cert = CertificateStore(None, fetch=fetch).get(url)
    assert cert.public_bytes(serialization.Encoding.PEM) == pem
    assert fetch.calls == [url]


@pytest.mark.parametrize("version", ["3", "0", "", 2, None])
def test_unsupported_signature_versions_are_refused(version):
    v = vector("notification_sigv2")
    assert rejection(verifier_for(v), v.with_changes(SignatureVersion=version)).reason \
        == "signature_version"


def test_signature_version_missing_is_refused():
    v = vector("notification_sigv1_awssdkruby")
    body = v.with_changes(SignatureVersion=None)
    assert "SignatureVersion" not in json.loads(body)
    assert rejection(verifier_for(v), body).reason == "signature_version"


def test_genuine_message_for_another_topic_is_refused():
    v = vector("subscription_confirmation")
    store = CertificateStore(CERTS_DIR, fetch=CountingFetch())
    verifier = SnsVerifier("arn:aws:sns:us-west-2:843378899134:OtherTopic", store,
                           clock=v.clock())
    assert rejection(verifier, v.body).reason == "topic"


@pytest.mark.parametrize("offset,reason", [
    (timedelta(hours=1, seconds=1), "stale"),
    (timedelta(days=400), "stale"),
    (timedelta(minutes=59), None),
    (timedelta(minutes=-4), None),  # sent up to five minutes "ahead" of our clock: skew
    (timedelta(minutes=-6), "stale"),  # from the future
])
def test_timestamp_window(offset, reason):
    v = vector("notification_sigv2")
    verifier = verifier_for(v, offset=offset)
    if reason is None:
        assert verifier.verify(v.body)["MessageId"] == v.message["MessageId"]
    else:
        assert rejection(verifier, v.body).reason == reason


def test_max_age_is_configurable():
    v = vector("notification_sigv2")
    verifier = verifier_for(v, offset=timedelta(minutes=2), max_age_s=60)
    assert rejection(verifier, v.body).reason == "stale"


@pytest.mark.parametrize("body", [
    b"not json",
    b"",
    b"[]",
    b'["Type", "Notification"]',
    b'"Notification"',
    b"null",
    b"\xff\xfe{}",
    b'{"Type": "Notification"',
])
def test_bodies_that_are_not_json_objects_are_malformed(body):
    v = vector("notification_sigv2")
    assert rejection(verifier_for(v), body).reason == "malformed"


@pytest.mark.parametrize("kind", ["Notice", None, 1, "notification"])
def test_unknown_types_are_malformed(kind):
    v = vector("notification_sigv2")
    assert rejection(verifier_for(v), v.with_changes(Type=kind)).reason == "malformed"


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn",
                                   "Signature", "SigningCertURL"])
def test_notification_missing_fields_are_malformed(field):
    v = vector("notification_sigv2")
    assert rejection(verifier_for(v), v.with_changes(**{field: None})).reason == "malformed"


@pytest.mark.parametrize("field", ["Token", "SubscribeURL", "Message", "TopicArn"])
def test_confirmation_missing_fields_are_malformed(field):
    v = vector("subscription_confirmation")
    assert rejection(verifier_for(v), v.with_changes(**{field: None})).reason == "malformed"


@pytest.mark.parametrize("field,value", [("Message", 5), ("Subject", ["x"]),
                                         ("TopicArn", {"a": 1}), ("Signature", 7)])
def test_non_string_signed_fields_are_malformed(field, value):
    v = vector("notification_sigv1_subject_vanus")
    assert rejection(verifier_for(v), v.with_changes(**{field: value})).reason == "malformed"


def test_signature_that_is_not_base64_is_refused():
    v = vector("notification_sigv2")
    assert rejection(verifier_for(v), v.with_changes(Signature="@@not base64@@")).reason \
        == "bad_signature"


def test_removing_the_signed_subject_breaks_the_signature():
    v = vector("notification_sigv1_subject_vanus")
    assert rejection(verifier_for(v), v.with_changes(Subject=None)).reason == "bad_signature"


def test_fetched_certificate_is_cached():
    v = vector("notification_sigv2")
    url = v.message["SigningCertURL"]
    fetch = CountingFetch({url: v.cert.read_bytes()})
    verifier = SnsVerifier(v.message["TopicArn"], CertificateStore(None, fetch=fetch),
                           clock=v.clock())
    assert verifier.verify(v.body) == v.message
    assert verifier.verify(v.body) == v.message
    assert fetch.calls == [url]


def test_certificate_directory_is_used_before_fetch(tmp_path):
    v = vector("notification_sigv1_awssdkruby")
    fetch = CountingFetch()
    verifier = verifier_for(v, fetch=fetch, certs_dir=tmp_path)
    # Nothing in the directory: the fetch is asked (and has nothing either).
    assert rejection(verifier, v.body).reason == "cert_unavailable"
    shutil.copy(v.cert, tmp_path / v.cert.name)
    assert verifier.verify(v.body) == v.message
    assert fetch.calls == [v.message["SigningCertURL"]]


def test_cache_is_bounded():
    pem = TestSigner().pem
    urls = [f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{i}.pem"
            for i in range(3)]
    fetch = CountingFetch(dict.fromkeys(urls, pem))
    store = CertificateStore(None, fetch=fetch, max_cached=2)
    for url in [*urls, urls[2], urls[0]]:
        store.get(url)
    assert fetch.calls == [*urls, urls[0]]


@pytest.mark.parametrize("error,reason,retryable", [
    (TransientError("timed out"), "cert_unavailable", True),
    (OSError("connection reset"), "cert_unavailable", True),
    (PermanentError("answered 404"), "cert", False),
])
def test_fetch_failures(error, reason, retryable):
    v = vector("notification_sigv2")
    fetch = CountingFetch(error=error)
    verifier = verifier_for(v, fetch=fetch, certs_dir=None)
    for _ in range(2):  # a failure is not cached
        caught = rejection(verifier, v.body)
        assert (caught.reason, caught.retryable) == (reason, retryable)
    assert len(fetch.calls) == 2


@pytest.mark.parametrize("content", [b"not a certificate", b"x" * (64 * 1024 + 1)])
def test_fetched_garbage_is_refused(content):
    v = vector("notification_sigv2")
    fetch = CountingFetch({v.message["SigningCertURL"]: content})
    assert rejection(verifier_for(v, fetch=fetch, certs_dir=None), v.body).reason == "cert"


@pytest.mark.parametrize("kind", ["Notification", "SubscriptionConfirmation",
                                  "UnsubscribeConfirmation"])
def test_every_type_verifies_with_its_canonical_string(kind, tmp_path):
    signer = TestSigner()
    signer.write_cert(tmp_path)
    topic = "arn:aws:sns:us-east-1:123456789012:test-dispatch"
    message = signer.message(kind, topic, NOW)
    verifier = SnsVerifier(topic, CertificateStore(tmp_path, fetch=CountingFetch()),
                           clock=lambda: NOW)
    assert verifier.verify(json.dumps(message).encode()) == message
    if kind != "Notification":
        forged = {**message, "Token": "attacker-token"}
        assert rejection(verifier, json.dumps(forged).encode()).reason == "bad_signature"


class _CertHost(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/redirect.pem":
            self.send_response(302)
            self.send_header("Location", "/ok.pem")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = {"/ok.pem": b"PEM", "/big.pem": b"x" * 70_000}.get(self.path)
        status = 200 if body is not None else (503 if self.path == "/down.pem" else 404)
        body = body or b"no"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def cert_host():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CertHost)
    stop = threading.Event()

    def serve():
        server.timeout = 0.1
        while not stop.is_set():
            server.handle_request()

    thread = threading.Thread(target=serve, name="cronctl-test-cert-host")
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    thread.join(5)
    server.server_close()
    assert not thread.is_alive()


def test_default_fetch_refuses_redirects_errors_and_large_files(cert_host):
    assert fetch_certificate(f"{cert_host}/ok.pem") == b"PEM"
    for path, error in [("/redirect.pem", PermanentError), ("/big.pem", PermanentError),
                        ("/missing.pem", PermanentError), ("/down.pem", TransientError)]:
        with pytest.raises(error):
            fetch_certificate(f"{cert_host}{path}")
    with pytest.raises(TransientError):
        fetch_certificate("http://127.0.0.1:9/unreachable.pem", timeout_s=1)


def test_a_certificate_directory_that_does_not_exist_is_a_config_error(tmp_path):
    from reconciler.errors import ConfigError

    with pytest.raises(ConfigError, match="CRONCTL_SNS_CERTS"):
        CertificateStore(tmp_path / "missing")
