"""Each cron's alert state (``reconciler.core.alerts.model.AlertState``), one item per cron in
the executions table under ``#alert/<cron>``: no execution id can take that key (ids are
UUIDs), and the item has none of the attributes of the ``by-cron`` (``cron``,
``scheduled_at``) or ``unfinished`` indexes, nor ``expires_at``. It carries the state as JSON
and a ``version``.

``fold`` stores a run's effect on the state and on the run's outbox in one transaction: the
state is written only if its version is still the one read, and the run's ``alert`` effect is
replaced by its notices only while it is still there and ``owner`` holds the outbox's claim.
So each run is counted once, even when its outbox is carried out twice (redelivery, replicas,
a crash before the effect's removal). ``replace`` stores a state alone, under the same
compare-and-swap on its version (``cronctl resume``). The state also carries the cron's
pause (suspend-after-failures), so dispatch reads one item to know it.
"""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.executions import from_attributes
from reconciler.core.alerts.model import ALERT, AlertState, Notice, notify_effect
from reconciler.errors import Conflict
from reconciler.settings import Settings

KEY_PREFIX = "#alert/"


def state_key(cron: str) -> str:
    return f"{KEY_PREFIX}{cron}"


class AlertStates:
    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.executions_table

    def get(self, cron: str) -> AlertState:
        """The cron's state (a fresh one when none is stored)."""
        answer = call_retrying(self._ddb.get_item, TableName=self._table,
                               Key={"execution_id": {"S": state_key(cron)}},
                               ConsistentRead=True)
        item = answer.get("Item")
        if not item:
            return AlertState(cron=cron)
        data = from_attributes(item)
        return AlertState.from_json(data["alert_state"], version=int(data["version"]))

    def many(self, crons: list[str]) -> dict[str, AlertState]:
        """The states of ``crons`` (BatchGetItem); crons without one are left out."""
        result: dict[str, AlertState] = {}
        names = list(dict.fromkeys(crons))
        for start in range(0, len(names), 100):
            request = {self._table: {"Keys": [{"execution_id": {"S": state_key(n)}}
                                              for n in names[start:start + 100]]}}
            for _ in range(10):
                answer = call_retrying(self._ddb.batch_get_item, RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    data = from_attributes(item)
                    state = AlertState.from_json(data["alert_state"], int(data["version"]))
                    result[state.cron] = state
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return result

    def fold(self, execution_id: str, owner: str, effects: frozenset[str], read: AlertState,
             new: AlertState, notices: tuple[Notice, ...]) -> bool:
        """Store ``new`` (if the stored state is still ``read``) and replace the run's
        ``alert`` effect by one ``notify:<key>`` effect per notice, in one transaction.
        ``effects`` is the outbox as the claim read it. False when either condition failed
        (another run of the cron was folded in meanwhile: read again; or the effect is gone)."""
        outbox = (set(effects) - {ALERT}) | {notify_effect(n.key) for n in notices}
        state_put = {"Put": self._put(read, new)}
        values: dict = {":alert": {"S": ALERT}, ":me": {"S": owner}}
        if outbox:
            update = "SET outbox = :outbox"
            values[":outbox"] = {"SS": sorted(outbox)}
        else:
            update = "REMOVE outbox"
        if notices:
            update = update.replace("SET outbox = :outbox",
                                    "SET outbox = :outbox, notices = :notices")
            values[":notices"] = {"M": {n.key: {"S": n.to_json()} for n in notices}}
        run_update = {"Update": {
            "TableName": self._table, "Key": {"execution_id": {"S": execution_id}},
            "UpdateExpression": update,
            "ConditionExpression": "contains(outbox, :alert) AND outbox_owner = :me",
            "ExpressionAttributeValues": values}}
        try:
            call_retrying(self._ddb.transact_write_items, TransactItems=[state_put, run_update])
        except Conflict:
            return False
        return True

    def replace(self, read: AlertState, new: AlertState) -> bool:
        """Store ``new`` if the stored state is still ``read`` (``cronctl resume``); False
        when it changed meanwhile (read again)."""
        try:
            call_retrying(self._ddb.put_item, **self._put(read, new))
        except Conflict:
            return False
        return True

    def _put(self, read: AlertState, new: AlertState) -> dict:
        return {
            "TableName": self._table,
            "Item": {"execution_id": {"S": state_key(new.cron)},
                     "alert_state": {"S": new.to_json()},
                     "version": {"N": str(read.version + 1)}},
            **({"ConditionExpression": "attribute_not_exists(execution_id)"}
               if read.version == 0 else
               {"ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(read.version)}}}),
        }
