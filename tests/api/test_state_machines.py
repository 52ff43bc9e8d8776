"""POST/GET /state-machines: store definitions as versions, read them back."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import PASS, create_machine, pointers


def test_a_new_definition_is_stored_as_version_one(client: TestClient) -> None:
    # When a definition is posted
    body = create_machine(client, "greeter")
    # Then it is version 1, with the definition as posted
    assert body["name"] == "greeter"
    assert body["version"] == 1
    assert body["definition"] == PASS


def test_the_same_definition_again_makes_no_new_version_and_a_change_does(
    client: TestClient,
) -> None:
    create_machine(client, "greeter")
    # When the same definition is posted again, then a changed one
    again = create_machine(client, "greeter")
    changed = {**PASS, "Comment": "second"}
    second = create_machine(client, "greeter", changed)
    # Then the first post kept version 1 and the change made version 2
    assert again["version"] == 1
    assert second["version"] == 2


def test_a_yaml_definition_is_accepted_as_text(client: TestClient) -> None:
    yaml_text = "StartAt: A\nStates:\n  A:\n    Type: Succeed\n"
    body = create_machine(client, "yaml-machine", yaml_text)
    assert body["definition"] == {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}


def test_listing_shows_every_machine_with_its_newest_version(client: TestClient) -> None:
    create_machine(client, "b-machine")
    create_machine(client, "a-machine")
    create_machine(client, "a-machine", {**PASS, "Comment": "v2"})

    response = client.get("/state-machines")

    assert response.status_code == 200
    listed = {m["name"]: m["latest_version"] for m in response.json()["items"]}
    assert listed == {"a-machine": 2, "b-machine": 1}


def test_one_machine_is_shown_at_its_newest_or_a_chosen_version(client: TestClient) -> None:
    create_machine(client, "greeter")
    create_machine(client, "greeter", {**PASS, "Comment": "v2"})

    newest = client.get("/state-machines/greeter")
    first = client.get("/state-machines/greeter", params={"version": 1})

    assert newest.json()["version"] == 2
    assert newest.json()["definition"]["Comment"] == "v2"
    assert first.json()["version"] == 1
    assert "Comment" not in first.json()["definition"]


def test_an_unknown_machine_or_version_is_a_404(client: TestClient) -> None:
    create_machine(client, "greeter")

    unknown = client.get("/state-machines/nobody")
    no_version = client.get("/state-machines/greeter", params={"version": 7})

    assert unknown.status_code == 404
    assert unknown.json()["error"] == "StateMachineNotFound"
    assert no_version.status_code == 404
    assert "version 7" in no_version.json()["detail"]


def test_an_invalid_definition_is_a_422_listing_every_problem_with_its_pointer(
    client: TestClient,
) -> None:
    definition = {
        "StartAt": "Missing",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "StringEquals": "a", "Next": "Nowhere"}],
            },
        },
    }
    response = client.post("/state-machines", json={"name": "broken", "definition": definition})

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "DefinitionInvalid"
    assert {"/StartAt", "/States/Route/Choices/0/Next"} <= pointers(response)
    # And nothing was stored
    assert client.get("/state-machines/broken").status_code == 404


def test_a_bad_name_or_missing_definition_is_a_422_naming_the_field(client: TestClient) -> None:
    spaced = client.post("/state-machines", json={"name": "has space", "definition": PASS})
    too_long = client.post("/state-machines", json={"name": "x" * 81, "definition": PASS})
    missing = client.post("/state-machines", json={"name": "ok"})
    extra = client.post("/state-machines", json={"name": "ok", "definition": PASS, "nope": 1})
    number = client.post("/state-machines", json={"name": "ok", "definition": 42})

    assert spaced.status_code == too_long.status_code == missing.status_code == 422
    assert pointers(spaced) == {"/body/name"}
    assert pointers(too_long) == {"/body/name"}
    assert pointers(missing) == {"/body/definition"}
    assert pointers(extra) == {"/body/nope"}
    assert pointers(number) == {"/body/definition"}


def test_a_body_that_is_not_json_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/state-machines", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "RequestInvalid"


def test_an_express_machine_keeps_its_type(client: TestClient) -> None:
    # When an EXPRESS machine is posted, then the same name as STANDARD
    response = client.post(
        "/state-machines", json={"name": "quick", "definition": PASS, "type": "EXPRESS"}
    )
    again = client.post("/state-machines", json={"name": "quick", "definition": PASS})

    # Then it is stored EXPRESS, and its type cannot change
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "EXPRESS"
    assert client.get("/state-machines/quick").json()["type"] == "EXPRESS"
    assert again.status_code == 409
    assert "is EXPRESS" in again.text
