"""The models a daemon holds N times are small (issue 10, item 4): slotted, strings interned,
equal small values shared; and equal to what they were."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from reconciler.core.desired import Deployment, DesiredSchedule, desired_cron
from reconciler.core.registry_model import RegistryItem
from reconciler.core.spec import (
    Capacity,
    ContainerSpec,
    CronSpec,
    Notifications,
    capacity_of,
    notifications_of,
)

DEP = Deployment(namespace="test", region="us-east-1", account="123456789012",
                 backend="rules", sidecar_image="busybox", log_group="/cronctl/test")


def spec(name: str, image: str = "perl", **fields) -> CronSpec:
    return CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule="cron(0 5 * * ? *)",
                    container=ContainerSpec(image=image, env=(("A", "1"),)), **fields)


def fresh(text: str) -> str:
    """An equal string that is not the same object."""
    return "".join(list(text))


@pytest.mark.parametrize("model", [spec("a"), spec("a").container, Capacity(),
                                   Notifications(), desired_cron(spec("a"), DEP).schedule])
def test_the_models_have_no_per_instance_dict(model):
    assert not hasattr(model, "__dict__")


def test_equal_texts_read_twice_are_held_once():
    one, two = spec(fresh("job")), spec(fresh("job"))
    assert one == two and one.name is two.name and one.file is two.file
    assert one.container.env[0][0] is two.container.env[0][0]
    desired = desired_cron(spec("a"), DEP).schedule
    copied = DesiredSchedule(**{f.name: fresh(value) if isinstance(value, str) else value
                                for f in fields(desired)
                                for value in (getattr(desired, f.name),)})
    assert copied == desired and copied.description is desired.description


def test_a_registry_item_read_back_is_equal_and_shares_its_texts():
    cron = desired_cron(spec("a", role="arn:aws:iam::1:role/r"), DEP)
    item = RegistryItem(name="a", spec=cron.spec, spec_hash=cron.spec.spec_hash(),
                        file=cron.spec.file, schedule_backend="rules", commit="c" * 40,
                        task_definition_arn="arn:td:1", overrides=cron.overrides)
    wire = item.to_item()
    one, two = RegistryItem.from_item(dict(wire)), RegistryItem.from_item(json.loads(
        json.dumps(wire)))
    assert one == item == two
    assert one.overrides == cron.overrides
    assert one.commit is two.commit and one.spec_hash is item.spec_hash
    key = next(iter(one.overrides))
    assert key is next(iter(two.overrides))


def test_crons_on_one_image_share_their_task_definition():
    one, two = desired_cron(spec("a"), DEP), desired_cron(spec("b"), DEP)
    assert one.task_definition is two.task_definition
    other = desired_cron(spec("c", image="python"), DEP)
    assert other.task_definition != one.task_definition


def test_small_values_are_shared_and_equal():
    assert capacity_of(256, 512) is capacity_of(256, 512) == Capacity(256, 512)
    assert notifications_of(slack="#a") is notifications_of(slack="#a") \
        == Notifications(slack="#a")
    assert notifications_of(alert_after=True) == Notifications(alert_after=True)
    assert notifications_of(slack=["unhashable"]) == Notifications(slack=["unhashable"])


def test_the_daemon_caps_malloc_arenas_and_returns_free_pages_on_linux():
    import sys

    from reconciler.service import memory

    if not sys.platform.startswith("linux"):
        assert (memory.limit_arenas(), memory.trim()) == (False, False)
        return
    blocks = [bytearray(64 * 1024) for _ in range(256)]   # 16 MiB on the heap, then freed
    del blocks
    assert memory.limit_arenas() is True
    assert memory.trim() is True
