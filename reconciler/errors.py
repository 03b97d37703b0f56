"""Our error taxonomy. Adapters translate botocore errors into these at their boundary.

- ``TransientError``: worth retrying (throttling, 5xx, timeouts). Retried in one place
  (``reconciler.adapters.aws.retrying``).
- ``PermanentError``: retrying will not help (validation, access denied, not found).
- ``NotFound``/``Conflict`` refine ``PermanentError`` for callers that branch on them.
- ``QuotaExceeded`` refines ``PermanentError``: a service quota (rules per event bus, topics,
  tables...) is reached; its message names the quota and the way out.
"""

from __future__ import annotations


class CronctlError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(CronctlError):
    """A failure that may succeed when retried."""


class PermanentError(CronctlError):
    """A failure that will not succeed when retried."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class NotFound(PermanentError):
    """The resource does not exist."""


class Conflict(PermanentError):
    """A conditional write failed or the resource already exists."""


class QuotaExceeded(PermanentError):
    """A service quota is reached: nothing changes until the quota is raised or usage drops.

    ``quota`` names the quota in words (``"the event bus's rules quota (300 by default)"``);
    ``operation`` is the AWS operation that answered it (``PutRule``): what else would reach it.
    """

    def __init__(self, message: str, code: str = "", quota: str = "",
                 operation: str = "") -> None:
        super().__init__(message, code)
        self.quota = quota
        self.operation = operation


class SourceError(CronctlError):
    """The Git source could not be read (unreachable remote, unknown ref, refused file)."""


class ConfigError(CronctlError):
    """Settings or flags are wrong."""


class NamespaceSettingsChanged(ConfigError):
    """The namespace's recorded settings changed since this process read them."""
