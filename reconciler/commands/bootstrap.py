"""`cronctl bootstrap`: create the namespace's shared AWS infrastructure, idempotently."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.commands.common import settings_from_args
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
  - EventBridge rule <ns>-ecs-events sending the cluster's ECS task state changes to the queue.
Everything is tagged managed-by=cronctl and cronctl:namespace=<ns>. Running it again creates
nothing; resources that drifted from these settings are set back ("updated").
Exit status: 0 done, 1 error (the resource it stopped at is named)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bootstrap", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", help="deployment name prefixing every resource "
                        "(env CRONCTL_NAMESPACE; default crons)")
    parser.add_argument("--cluster", help="ECS cluster name (env CRONCTL_CLUSTER; "
                        "default: the namespace)")
    parser.add_argument("--endpoint", metavar="URL",
                        help="the daemon's public http(s) URL for SNS (e.g. https://host/sns); "
                        "subscribed to the topic when given")
    parser.add_argument("--output", choices=["text", "json"], default="text",
                        help="text: one line per resource as it goes, then a summary; "
                        "json: one document at the end (default text)")
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
    else:
        document = {
            "namespace": settings.namespace,
            "resources": [row._asdict() for row in result.rows],
            "topic_arn": result.topic_arn, "queue_url": result.queue_url,
            "queue_arn": result.queue_arn, "dlq_url": result.dlq_url,
            "cluster_arn": result.cluster_arn, "log_group": result.log_group,
            "subscription_arn": result.subscription_arn,
        }
        print(json.dumps(document, indent=2))
    return 0
