"""The graph of a definition, its outcomes in an execution, and the three drawings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import asl, graph
from orchestrator.graph import COLOURS, EdgeKind, Outcome

ORDER = json.loads((Path(__file__).parents[2] / "orchestrator/examples/order.asl.json").read_text())
SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Event:
    event_type: str
    state_name: str | None


def order_graph() -> graph.Graph:
    return graph.build(asl.load(ORDER))


def edges(g: graph.Graph) -> dict[tuple[str, str], graph.Edge]:
    return {(e.source, e.target): e for e in g.edges}


def test_states_choice_rules_default_and_catch_edges() -> None:
    g = order_graph()
    names = [n.name for n in g.nodes if not n.is_pseudo]
    assert names == ["Validate", "Charge", "Fulfil", "Done", "Rejected"]
    by_pair = edges(g)
    assert by_pair[("Validate", "Charge")].kind is EdgeKind.CHOICE
    assert by_pair[("Validate", "Charge")].label.startswith("$.order.total present true and")
    assert by_pair[("Validate", "Rejected")] == graph.Edge(
        "Validate", "Rejected", EdgeKind.DEFAULT, "Default"
    )
    assert by_pair[("Charge", "Rejected")] == graph.Edge(
        "Charge", "Rejected", EdgeKind.CATCH, "CardDeclined"
    )
    assert by_pair[("__start__", "Validate")].kind is EdgeKind.START
    assert by_pair[("Done", "__end__")].kind is EdgeKind.END
    assert by_pair[("Rejected", "__end__")].kind is EdgeKind.END


def test_parallel_branches_and_map_processors_are_nested_groups() -> None:
    fulfil = order_graph().node("Fulfil")
    assert [b.label for b in fulfil.children] == ["Branch 1", "Branch 2"]
    reserve = fulfil.children[0].node("Fulfil/0/Reserve")
    assert reserve.type == "Map"
    (processor,) = reserve.children
    assert processor.label == "Item processor"
    assert [n.id for n in processor.walk()] == ["Fulfil/0/Reserve/item/ReserveItem"]
    assert fulfil.children[1].node("Fulfil/1/Email").resource == "send-email"


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        ({"Variable": "$.n", "NumericGreaterThan": 3, "Next": "X"}, "$.n > 3"),
        ({"Variable": "$.s", "StringEquals": "a", "Next": "X"}, '$.s == "a"'),
        ({"Variable": "$.a", "NumericLessThanEqualsPath": "$.b", "Next": "X"}, "$.a <= $.b"),
        ({"Not": {"Variable": "$.x", "IsNull": True}, "Next": "X"}, "not ($.x null true)"),
        ({"Condition": "{% $states.input.n > 1 %}", "Next": "X"}, "{% $states.input.n > 1 %}"),
        ({"Variable": "$.a_very_long_field_name_here", "StringEquals": "abcdefghijkl"}, None),
    ],
)
def test_choice_rule_labels(rule: dict[str, Any], label: str | None) -> None:
    text = graph.rule_label(rule)
    if label is None:
        assert len(text) == 40
        assert text.endswith("…")
    else:
        assert text == label


def test_outcomes_of_a_failed_execution_with_a_caught_error() -> None:
    g = order_graph()
    events = [
        Event("StateSucceeded", "Validate"),
        Event("StateRetrying", "Charge"),
        Event("StateCaught", "Charge"),
        Event("StateFailed", "Rejected"),
    ]
    out = graph.outcomes(g, events, status="FAILED", current_state="Rejected")
    assert out["Validate"] is Outcome.SUCCEEDED
    assert out["Charge"] is Outcome.CAUGHT
    assert out["Rejected"] is Outcome.FAILED
    assert out["Fulfil"] is Outcome.NOT_REACHED
    assert out["Fulfil/1/Email"] is Outcome.NOT_REACHED
    assert out["Done"] is Outcome.NOT_REACHED


def test_outcomes_of_running_and_waiting_states_and_their_groups() -> None:
    g = order_graph()
    events = [Event("StateSucceeded", n) for n in ("Validate", "Charge", "Email")]
    running = graph.outcomes(g, events, status="RUNNING", current_state="ReserveItem")
    assert running["Fulfil/0/Reserve/item/ReserveItem"] is Outcome.RUNNING
    assert running["Fulfil/1/Email"] is Outcome.SUCCEEDED
    # A group without an event of its own, whose insides ran, is running.
    assert running["Fulfil"] is Outcome.RUNNING
    assert running["Fulfil/0/Reserve"] is Outcome.RUNNING
    waiting = graph.outcomes(g, events[:1], status="WAITING", current_state="Charge")
    assert waiting["Charge"] is Outcome.WAITING


def test_a_stopped_execution_fails_the_state_it_was_in() -> None:
    g = order_graph()
    events = [Event("StateSucceeded", "Validate")]
    out = graph.outcomes(g, events, status="ABORTED", current_state="Charge")
    assert out["Charge"] is Outcome.FAILED


def test_mermaid_has_subgraphs_dotted_catch_edges_and_outcome_classes() -> None:
    g = order_graph()
    text = graph.to_mermaid(g, {"Rejected": Outcome.FAILED})
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  subgraph n3 ["Fulfil (Parallel)"]' in lines
    assert '    subgraph n3_0 ["Branch 1"]' in lines
    assert '  n2 -.->|"CardDeclined"| n14' in lines
    assert '  n1 -->|"Default"| n14' in lines
    assert "  class n14 failed" in lines


def test_dot_has_clusters_and_edges_into_and_out_of_groups() -> None:
    text = graph.to_dot(order_graph(), {"Rejected": Outcome.FAILED})
    assert "subgraph cluster_n3 {" in text
    assert "n2 -> n4 [lhead=cluster_n3];" in text
    assert "n9 -> n13 [ltail=cluster_n3];" in text
    fill, stroke = COLOURS[Outcome.FAILED]
    assert f'n14 [label="Rejected", fillcolor="{fill}", color="{stroke}"];' in text


def test_svg_is_one_document_with_a_box_per_state_coloured_by_outcome() -> None:
    g = order_graph()
    out = {"Validate": Outcome.SUCCEEDED, "Rejected": Outcome.FAILED}
    root = ET.fromstring(  # noqa: S314 (our own output)
        graph.to_svg(g, out, title="order")
    )
    states = {el.get("data-id"): el for el in root.iter(f"{SVG}g") if el.get("data-id")}
    assert set(states) == {n.id for n in g.walk()}
    rejected = states["Rejected"]
    assert "outcome-failed" in (rejected.get("class") or "")
    rect = rejected.find(f"{SVG}rect")
    assert rect is not None
    assert (rect.get("fill"), rect.get("stroke")) == COLOURS[Outcome.FAILED]
    assert root.find(f"{SVG}title") is not None


def test_svg_boxes_of_a_group_contain_its_branches() -> None:
    placed = graph.layout(order_graph())
    boxes = {p.node.id: p.box for p in placed.all_nodes()}
    outer = boxes["Fulfil"]
    for inner in ("Fulfil/0/Reserve", "Fulfil/1/Email", "Fulfil/0/Reserve/item/ReserveItem"):
        box = boxes[inner]
        assert outer.x < box.x, inner
        assert box.x + box.w < outer.x + outer.w, inner
        assert outer.y < box.y, inner
        assert box.y + box.h < outer.y + outer.h, inner
    # No two states of one level overlap.
    top = [p.box for p in placed.nodes]
    for i, a in enumerate(top):
        for b in top[i + 1 :]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart


def test_loops_and_self_loops_are_laid_out() -> None:
    defn = {
        "StartAt": "Poll",
        "States": {
            "Poll": {
                "Type": "Task",
                "Resource": "poll",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Poll"}],
                "Next": "Ready?",
            },
            "Ready?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "Done"}],
                "Default": "Poll",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    svg = graph.draw(defn, "svg")
    root = ET.fromstring(  # noqa: S314 (our own output)
        svg
    )
    assert len([p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "")]) == 6


def test_draw_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'png'"):
        graph.draw(ORDER, "png")
