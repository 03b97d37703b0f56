"""`cronctl bootstrap`: create the namespace's shared AWS infrastructure, idempotently."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.commands.common import add_aws_flags, settings_from_args
from reconciler.errors import CronctlError

HELP = "create the namespace's shared AWS infrastructure (idempotent)"

DESCRIPTION = """\
Create, where missing, the AWS resources every cron of the namespace shares:
  - DynamoDB tables <ns>-registry, <ns>-executions (TTL on expires_at) and <ns>-leases;
  - SNS topic <ns>-dispatch that every schedule targets (EventBridge and Scheduler of
    this account may publish to it), subscribed to --endpoint when given;
  - CloudWatch Logs group /cronctl/<ns> for the tasks' output (30-day retention);
  - ECS cluster --cluster (default: the namespace), used as it is when it exists;
  - SQS queue <ns>-ecs-events (visibility 60 s, long poll 20 s) with the dead-letter queue
    <ns>-ecs-events-dlq (5 receives, 14-day retention);
  - EventBridge rule <ns>-ecs-events sending the cluster's ECS task state changes to the queue;
  - IAM roles <ns>-task-execution (trusted by ecs-tasks.amazonaws.com, with the managed policy
    AmazonECSTaskExecutionRolePolicy) and <ns>-scheduler (trusted by scheduler.amazonaws.com,
    sns:Publish on the topic), unless --execution-role-arn / --scheduler-role-arn are given;
  - the namespace's settings (below), recorded in <ns>-registry (item #namespace, versioned).
Every other command and the daemon read the recorded settings once at start, so they always
agree; a flag or CRONCTL_* variable that contradicts them is refused there. To change one, run
bootstrap with it (e.g. `cronctl bootstrap --scheduler scheduler`): it shows each change
(old -> new) and records it; settings not given keep their recorded values. The next reconcile
pass applies the change (a backend switch moves every schedule). A running daemon refuses to
reconcile until it is restarted with the new settings.
Everything is tagged managed-by=cronctl and cronctl:namespace=<ns>. Running it again creates
nothing; resources that drifted from these settings are set back ("updated").
Exit status: 0 done, 1 error (the resource it stopped at is named)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bootstrap", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", metavar="URL",
                        help="the daemon's public http(s) URL for SNS (e.g. https://host/sns); "
                        "subscribed to the topic when given")
    parser.add_argument("--output", choices=["text", "json"], default="text",
                        help="text: one line per resource as it goes, then a summary; "
                        "json: one document at the end (default text)")
    add_aws_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.adapters.aws import AwsClients
    from reconciler.service.bootstrap import bootstrap

    settings = settings_from_args(args)
    text = args.output == "text"
    progress = (lambda line: print(line, flush=True)) if text else None
    try:
        result = bootstrap(AwsClients(settings), settings, progress=progress,
                           endpoint_url=args.endpoint)
    except CronctlError as exc:
        print(f"cronctl bootstrap: error: {exc}", file=sys.stderr)
        return 1
    if text:
        counts = result.counts()
        print(f"namespace {settings.namespace}: {counts['created']} created, "
              f"{counts['found']} found, {counts['updated']} updated")
        print(f"topic    {result.topic_arn}")
        print(f"queue    {result.queue_url}")
        print(f"cluster  {result.cluster_arn}")
        print(f"logs     {result.log_group}")
        status = next((row.status for row in result.rows
                       if row.kind == "namespace-settings"), "found")
        if status == "created":
            print(f"settings recorded (version {result.settings_version}):")
            for key, value in (result.settings.flat().items() if result.settings else ()):
                print(f"  {key}: {_shown(value)}")
        elif result.changes:
            print(f"settings changed (version {result.settings_version}):")
            for key, old, new in result.changes:
                print(f"  {key}: {_shown(old)} -> {_shown(new)}")
        else:
            print(f"settings unchanged (version {result.settings_version})")
    else:
        document = {
            "namespace": settings.namespace,
            "resources": [row._asdict() for row in result.rows],
            "topic_arn": result.topic_arn, "queue_url": result.queue_url,
            "queue_arn": result.queue_arn, "dlq_url": result.dlq_url,
            "cluster_arn": result.cluster_arn, "log_group": result.log_group,
            "subscription_arn": result.subscription_arn,
            "settings": result.settings.to_record() if result.settings else None,
            "settings_version": result.settings_version,
            "settings_changes": [{"setting": key, "old": _json(old), "new": _json(new)}
                                 for key, old, new in result.changes],
        }
        print(json.dumps(document, indent=2))
    return 0


def _json(value):
    return list(value) if isinstance(value, tuple) else value


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
