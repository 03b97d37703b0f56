"""One POST to a notifier, its errors translated (shared by Slack and PagerDuty)."""

from __future__ import annotations

import requests

from reconciler.errors import PermanentError, TransientError

USER_AGENT = "cronctl"


def post(session: requests.Session, url: str, what: str, timeout_s: float,
         **kwargs) -> requests.Response:
    """POST ``url``; the answer when it is 2xx. Timeouts, connection errors, 429 and 5xx raise
    ``TransientError``; any other answer ``PermanentError``; both name ``what``."""
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    try:
        response = session.post(url, timeout=timeout_s, headers=headers, **kwargs)
    except requests.Timeout as exc:
        raise TransientError(f"{what}: no answer within {timeout_s:g} s") from exc
    except requests.RequestException as exc:
        raise TransientError(f"{what}: cannot connect ({type(exc).__name__})") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{what}: HTTP {response.status_code}"
                             + (" (rate limited)" if response.status_code == 429 else ""))
    if not 200 <= response.status_code < 300:
        raise PermanentError(f"{what}: HTTP {response.status_code}: "
                             f"{response.text[:300].strip()}", code=str(response.status_code))
    return response
