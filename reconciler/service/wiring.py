"""Builds the daemon from Settings: production wiring and the embedded mode's extras."""

from __future__ import annotations

import json
from dataclasses import dataclass

from reconciler.adapters import ecs_tasks, sns, sqs
from reconciler.adapters.aws import AwsClients, CallCounter
from reconciler.adapters.executions import ExecutionStore, started_pending
from reconciler.adapters.notifiers import Notifiers
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.alerts.decide import slack_warnings
from reconciler.errors import ConfigError, CronctlError
from reconciler.logs import get_logger
from reconciler.service.control.reconcile_loop import ReconcileLoop
from reconciler.service.daemon import Component, Daemon, readiness_check
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.outbox import Outbox
from reconciler.service.execution.watchdog import Watchdog
from reconciler.service.http.server import DaemonHttpServer, parse_listen
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier
from reconciler.service.http.status_page import StatusPages
from reconciler.service.metrics import Metrics
from reconciler.service.monitoring.pings import Pinger
from reconciler.service.namespace import resolve
from reconciler.settings import Settings

log = get_logger("cronctl.serve")


@dataclass
class BuiltDaemon:
    """The daemon and its parts (the parts are exposed for status lines and tests)."""

    daemon: Daemon
    http: DaemonHttpServer
    loop: ReconcileLoop
    consumer: EventConsumer
    dispatcher: Dispatcher
    watchdog: Watchdog
    settings: Settings
    summary: list[str]
    metrics: Metrics | None = None
    pinger: Pinger | None = None


def build_daemon(settings: Settings, embedded: bool = False,
                 cert_fetch=None, clock_now=None) -> BuiltDaemon:
    """The daemon's components, in start order, and the lines to print at start.

    ``cert_fetch`` replaces the download of SNS signing certificates (embedded mode uses the
    in-process emulator's certificates). ``clock_now`` replaces the embedded clock's time
    source (tests run it fast).
    """
    parse_listen(settings.listen)  # a bad --listen fails before anything starts
    summary: list[str] = []
    emulator = None
    fetch = cert_fetch
    if embedded:
        from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
        from reconciler.service.embedded.emulator import EmbeddedAws

        emulator = EmbeddedAws()
        # Short SQS polls: the emulator costs nothing per call, and Ctrl-C stops at once.
        settings = settings.with_(endpoint_url=emulator.start(),
                                  sqs_wait_s=min(settings.sqs_wait_s, 2))
        fetch = moto_cert_fetcher
        summary.append(f"embedded AWS emulator: {settings.endpoint_url}")
        summary.append(f"  to inspect: export AWS_ENDPOINT_URL={settings.endpoint_url} "
                       "AWS_ACCESS_KEY_ID=embedded AWS_SECRET_ACCESS_KEY=embedded")
    metrics = Metrics()  # this daemon's series, served by GET /metrics
    clients = AwsClients(settings, CallCounter(on_call=metrics.aws_call,
                                               on_throttle=metrics.aws_throttle))
    if embedded:
        from reconciler.service.bootstrap import bootstrap

        result = bootstrap(clients, settings)
        summary.append(f"bootstrapped namespace {settings.namespace!r}: {result.counts()}")
        topic_arn = result.topic_arn
    else:
        topic_arn = settings.topic_arn(*clients.identity())
    # The namespace's recorded settings, read once: the CLI reads the same ones.
    settings = resolve(clients, settings, warn=lambda text: log.warning(
        "namespace.settings_not_recorded", message=text))

    pinger = Pinger(settings, metrics)  # the monitor's pings: dispatch and run ends
    # What follows a run's final state (log line, ping, alerts), wherever it became final.
    outbox = Outbox(clients, settings, pinger=pinger, notifiers=Notifiers(settings),
                    metrics=metrics)
    summary += _notifier_summary(clients, settings)
    dispatcher = Dispatcher(clients, settings, metrics, pinger=pinger, outbox=outbox)
    dispatcher.warm()  # the default VPC's network, looked up now, not on the first dispatch
    loop = ReconcileLoop(clients, settings, metrics=metrics)
    verifier = SnsVerifier(topic_arn, CertificateStore(settings.sns_certs_dir, fetch=fetch))
    http = DaemonHttpServer(
        settings.listen, verifier,
        on_notification=dispatcher.handle_sns_message,
        on_subscription_confirmation=lambda topic, token: sns.confirm_subscription(
            clients, topic, token),
        readiness=readiness_check(clients, settings.registry_table),
        on_reconcile=loop.trigger,
        webhook_token=settings.webhook_token,
        webhook_secret=settings.webhook_secret,
        metrics=metrics,
        status_pages=StatusPages(clients, settings).answer,
    )
    consumer = EventConsumer(clients, settings, wait_time_s=settings.sqs_wait_s,
                             metrics=metrics, outbox=outbox)
    watchdog = Watchdog(clients, settings, dispatcher, metrics=metrics, outbox=outbox)
    # Started in this order, stopped in reverse: the endpoint stops accepting first (in-flight
    # dispatches finish), then the watchdog (its repairs are conditional writes, each whole
    # or not at all), then polling stops (no message is deleted before its effect is
    # stored), then the reconcile loop, and last the ping sender (so the runs' last pings
    # are still queued and sent while the others stop).
    components: list[Component] = [pinger.sender, loop, consumer, watchdog, http]
    if embedded:
        # The emulator (already running) is first, so it stops last.
        components = [emulator, *components,
                      *_embedded_components(clients, settings, topic_arn, http, clock_now)]
    daemon = Daemon(components=components, on_reload=loop.trigger)
    if not embedded:
        # Changed namespace settings (cronctl bootstrap): every component is built again
        # with them (cronctl serve), instead of refusing to reconcile until a restart. The
        # embedded mode's settings are its own bootstrap's: they do not change under it.
        loop.on_settings_changed = daemon.request_restart
    routes = "POST /sns, GET /healthz, GET /readyz, GET / (status page)"
    routes += ", GET /metrics"
    if http.webhook_enabled:
        routes += ", POST /reconcile"
    if http.github_enabled:
        routes += ", POST /v1/sync"
    summary.append(f"listening on {settings.listen} ({routes})")
    return BuiltDaemon(daemon, http, loop, consumer, dispatcher, watchdog, settings, summary,
                       metrics, pinger)


def _notifier_summary(clients: AwsClients, settings: Settings) -> list[str]:
    """Which notifiers this process can reach, and a warning per cron that names Slack when
    it has neither a token nor a webhook (logged too)."""
    slack = ("Slack Web API (token)" if settings.slack_token else
             "Slack incoming webhook" if settings.slack_webhook_url else "Slack not configured")
    lines = [f"alerts: {slack}; PagerDuty Events API v2 at {settings.pagerduty_events_url}"]
    if settings.slack_configured:
        return lines
    try:
        specs = [item.spec for item in RegistryReader(clients, settings).all()]
    except CronctlError as exc:  # not bootstrapped yet: the reconcile loop says so
        log.debug("serve.slack_check_skipped", error=str(exc))
        return lines
    for warning in slack_warnings(specs, settings.slack_configured):
        log.warning("serve.slack_not_configured", message=warning)
        lines.append(f"warning: {warning}")
    return lines


class _Subscriber:
    """Subscribes the endpoint to the topic once the HTTP server listens (embedded mode)."""

    def __init__(self, clients: AwsClients, topic_arn: str, http: DaemonHttpServer) -> None:
        self.clients, self.topic_arn, self.http = clients, topic_arn, http

    def start(self) -> None:
        sns.subscribe_endpoint(self.clients, self.topic_arn, f"{self.http.url}/sns")

    def stop(self, timeout: float) -> bool:
        return True


def _embedded_components(clients: AwsClients, settings: Settings, topic_arn: str,
                         http: DaemonHttpServer, clock_now=None) -> list:
    from reconciler.adapters.logs import put_lines
    from reconciler.service.embedded.clock import LocalClock
    from reconciler.service.embedded.runner import LocalTaskRunner

    registry = RegistryReader(clients, settings)
    cluster = ecs_tasks.cluster_arn(clients, settings.cluster_name)
    if not cluster:
        raise ConfigError(f"cluster {settings.cluster_name} not found after bootstrap")
    queue_url = sqs.queue_url(clients, settings.queue_name)

    def send_event(envelope: dict) -> None:
        sqs.send_message(clients, queue_url, json.dumps(envelope))

    publish = lambda message: sns.publish(clients, topic_arn, message)  # noqa: E731
    clock = (LocalClock(registry.all, publish, now=clock_now) if clock_now
             else LocalClock(registry.all, publish))
    runner = LocalTaskRunner(list_started=lambda: started_pending(clients, settings.executions_table),
                             registry_get=registry.get,
                             send_event=send_event, region=settings.region,
                             account=clients.account_id(),
                             cluster_arn=cluster,
                             put_logs=lambda group, stream, lines: put_lines(
                                 clients, group, stream, lines),
                             log_group=settings.log_group_name, stream_prefix=settings.namespace,
                             describe_stopping=lambda arns: ecs_tasks.stopping_reasons(
                                 clients, settings.cluster_name, arns),
                             note_execution=ExecutionStore(clients, settings).add_note)
    return [_Subscriber(clients, topic_arn, http), clock, runner]
