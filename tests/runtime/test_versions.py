"""A definition change never alters executions already running on the old version."""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.statemachine import StateMachine
from orchestrator.types import ExecutionStatus, TimerKind
from tests.support import wait_until

from .conftest import Env, states_in


def parking_machine(stamp: str) -> dict[str, Any]:
    """Park on a 1 s Wait or on a Message (by ``$.park``), then stamp the version."""
    return {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.park", "StringEquals": "wait", "Next": "Nap"}],
                "Default": "Listen",
            },
            "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Stamp"},
            "Listen": {
                "Type": "Message",
                "CorrelationKey": "release",
                "CorrelationValuePath": "$.ticket",
                "ResultPath": "$.message",
                "Next": "Stamp",
            },
            "Stamp": {"Type": "Pass", "Result": stamp, "ResultPath": "$.version", "End": True},
        },
    }


def test_executions_parked_on_the_old_version_finish_on_it_and_new_starts_use_the_new_one(
    env: Env,
) -> None:
    # Given version 1, and two of its executions parked on a Wait and on a Message
    v1 = env.machine("versioned", parking_machine("v1"))
    napping = v1.start({"park": "wait", "ticket": "t-nap"})
    listening = v1.start({"park": "message", "ticket": "t-1"})
    assert napping.status == listening.status == ExecutionStatus.WAITING
    assert [t.kind for t in env.repo.execution_timers(napping.id)] == [TimerKind.WAIT]

    # When the definition changes while they wait
    v2 = env.machine("versioned", parking_machine("v2"))
    assert (v1.version, v2.version) == (1, 2)
    latest = env.bind(StateMachine.load("versioned", repository=env.repo, settings=env.settings))
    fresh = latest.start({"park": "message", "ticket": "t-2"})

    # ... and they are woken
    runner = env.runner()
    wait_until(lambda: bool(runner.fire_due_timers()), timeout=10, what="the Wait timer")
    assert env.send("release", "t-1", {"ok": 1}) == [listening.id]
    assert env.send("release", "t-2", {"ok": 2}) == [fresh.id]

    # Then the old executions finished on version 1, the new one on version 2
    for execution_id, stamp, version in [
        (napping.id, "v1", v1),
        (listening.id, "v1", v1),
        (fresh.id, "v2", v2),
    ]:
        done = env.execution(execution_id)
        assert done.status == ExecutionStatus.SUCCEEDED
        assert done.output["version"] == stamp
        assert done.version_id == version.version_record.id
    assert states_in(v1.history(napping.id)) == ["Route", "Nap", "Stamp"]
    assert states_in(v1.history(listening.id)) == ["Route", "Listen", "Stamp"]
    assert {e.id for e in latest.list_executions(version=1).items} == {napping.id, listening.id}
    assert {e.id for e in latest.list_executions(version=2).items} == {fresh.id}


def test_creating_the_same_definition_again_makes_no_new_version(env: Env) -> None:
    # Given two versions of a machine
    env.machine("versioned", parking_machine("v1"))
    second = env.machine("versioned", parking_machine("v2"))

    # When the current definition is created again (as an equal copy, keys reordered)
    definition = copy.deepcopy(parking_machine("v2"))
    reordered = dict(reversed(list(definition.items())))
    again = env.machine("versioned", reordered)

    # Then it is the same version, and the machine still has two
    assert again.version == second.version == 2
    assert again.version_record.id == second.version_record.id
    (info,) = StateMachine.list(repository=env.repo)
    assert (info.name, info.latest_version) == ("versioned", 2)
    first = StateMachine.load("versioned", 1, repository=env.repo, settings=env.settings)
    assert first.version_record.definition == parking_machine("v1")
