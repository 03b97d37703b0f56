"""SNS: the namespace's dispatch topic, its subscription to the daemon, and publishing.

Every schedule targets the one topic; the topic POSTs each message to the daemon's endpoint.
Lookups are by ARN (``GetTopicAttributes``), never by listing every topic of the account.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.infra.attributes import differing
from reconciler.errors import ConfigError, NotFound

PUBLISHING_SERVICES = ("events.amazonaws.com", "scheduler.amazonaws.com")


def topic_policy(topic_arn: str, account_id: str) -> dict:
    """Topic policy: EventBridge rules and Scheduler of this account may publish to the topic."""
    return {
        "Version": "2012-10-17",
        "Id": "cronctl-dispatch",
        "Statement": [{
            "Sid": "cronctl-schedules-publish",
            "Effect": "Allow",
            "Principal": {"Service": list(PUBLISHING_SERVICES)},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }],
    }


def delivery_policy() -> dict:
    """The topic's HTTP/S delivery policy: the daemon answers 5xx only when a delivery should
    come again (a transient failure, or a run another attempt is starting right now), so SNS
    retries for about 11 minutes with exponential backoff (1 s to 60 s; AWS's hard limit on the
    total is 3,600 s) instead of its default of three retries 20 s apart. What is still not
    started after that is resumed by the daemon's watchdog."""
    return {"http": {
        "defaultHealthyRetryPolicy": {
            "minDelayTarget": 1, "maxDelayTarget": 60, "numRetries": 20,
            "numNoDelayRetries": 0, "numMinDelayRetries": 2, "numMaxDelayRetries": 8,
            "backoffFunction": "exponential"},
        "disableSubscriptionOverrides": False,
    }}


def ensure_topic(clients: AwsClients, topic_arn: str, tags: dict[str, str],
                 attributes: dict[str, str]) -> str:
    """Make the topic ``topic_arn`` exist with ``attributes``; "created" | "found" | "updated"."""
    sns = clients.client("sns")
    name = topic_arn.rsplit(":", 1)[1]
    try:
        current = call_retrying(sns.get_topic_attributes, TopicArn=topic_arn)["Attributes"]
    except NotFound:
        call_retrying(sns.create_topic, Name=name, Attributes=attributes,
                      Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return "created"
    changes = differing(current, attributes)
    for key, value in changes.items():
        call_retrying(sns.set_topic_attributes, TopicArn=topic_arn,
                      AttributeName=key, AttributeValue=value)
    return "updated" if changes else "found"


def endpoint_protocol(endpoint_url: str) -> str:
    """``http`` or ``https`` from the endpoint URL; anything else is a ConfigError."""
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint URL must be http(s)://host[:port]/path, got {endpoint_url!r}")
    return parts.scheme


def ensure_subscription(clients: AwsClients, topic_arn: str, endpoint_url: str) -> tuple[str, str]:
    """Subscribe ``endpoint_url`` to the topic unless it already is; ``(arn, created|found)``.

    An existing, confirmed subscription of the same endpoint is reused. One still pending
    confirmation is subscribed again, which makes SNS resend the confirmation request.
    """
    protocol = endpoint_protocol(endpoint_url)
    sns = clients.client("sns")
    pending = False
    for sub in _subscriptions(clients, topic_arn):
        if sub["Protocol"] != protocol or sub["Endpoint"] != endpoint_url:
            continue
        if sub["SubscriptionArn"].startswith("arn:"):
            return sub["SubscriptionArn"], "found"
        pending = True
    response = call_retrying(sns.subscribe, TopicArn=topic_arn, Protocol=protocol,
                             Endpoint=endpoint_url, ReturnSubscriptionArn=True)
    return response["SubscriptionArn"], "found" if pending else "created"


def _subscriptions(clients: AwsClients, topic_arn: str):
    sns = clients.client("sns")
    token = None
    while True:
        kwargs = {"TopicArn": topic_arn, **({"NextToken": token} if token else {})}
        page = call_retrying(sns.list_subscriptions_by_topic, **kwargs)
        yield from page["Subscriptions"]
        token = page.get("NextToken")
        if not token:
            return


def subscribe_endpoint(clients: AwsClients, topic_arn: str, endpoint_url: str) -> str:
    """Subscribe the daemon's endpoint to the topic (idempotent); the subscription ARN."""
    return ensure_subscription(clients, topic_arn, endpoint_url)[0]


def confirm_subscription(clients: AwsClients, topic_arn: str, token: str) -> str:
    """Confirm a subscription with the token SNS sent; unsubscribing then needs a signature."""
    response = call_retrying(clients.client("sns").confirm_subscription, TopicArn=topic_arn,
                             Token=token, AuthenticateOnUnsubscribe="true")
    return response["SubscriptionArn"]


def publish(clients: AwsClients, topic_arn: str, message: str) -> str:
    """Publish ``message`` (no Subject) to the topic; the message id."""
    response = call_retrying(clients.client("sns").publish, TopicArn=topic_arn, Message=message)
    return response["MessageId"]

