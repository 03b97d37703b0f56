"""Where the emulator's semantics differ from AWS's in a way the chaos scenarios would trip on,
and what is done about it (the emulator runs in the test process, so it can be adjusted).

- **DynamoDB conditional writes are not atomic in the emulator.** Its handler checks a
  condition and then writes, with nothing holding other requests off in between; two concurrent
  writes with the same condition can both succeed (a few times in a thousand under load). On
  AWS a conditional write is atomic, and every claim, lock and compare-and-swap of cronctl
  relies on that. ``atomic_dynamodb()`` (used by the embedded mode and every test's emulator)
  makes it handle one DynamoDB request at a time.
- **A transaction deep-copies the tables it touches** (time in proportion to their size, and
  HTTP 500 when another request changes one meanwhile): ``cheap_transactions()`` checks every
  item's condition first and keeps only the touched items to undo a failed write.
- **RunTask ignores ``clientToken``** (AWS deduplicates by it): the scenarios never let a
  RunTask request that was lost before the emulator saw it arrive late, and keep each
  dispatch attempt shorter than its claim on the run.
- **ECS forgets nothing**: ``tools.forget_task`` edits its state, as AWS forgets a stopped task
  after about an hour.
"""

from __future__ import annotations

from reconciler.service.embedded.emulator import atomic_dynamodb, cheap_transactions

__all__ = ["atomic_dynamodb", "cheap_transactions"]
