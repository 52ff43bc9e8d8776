"""The bearer token: every route but /health needs it once it is configured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from orchestrator.settings import Settings

TOKEN = "s3cret-token"  # noqa: S105  # a test token, not a secret


@pytest.fixture
def guarded(api_settings: Settings, make_client: Callable[..., TestClient]) -> TestClient:
    """A client of an app that requires ``TOKEN``."""
    return make_client(Settings(**api_settings.model_dump(exclude={"api_token"}), api_token=TOKEN))


def _routes(client: TestClient) -> list[APIRoute]:
    return [route for route in client.app.routes if isinstance(route, APIRoute)]  # type: ignore[attr-defined]


def test_every_route_but_health_refuses_a_request_without_the_token(
    guarded: TestClient,
) -> None:
    for route in _routes(guarded):
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods:
            response = guarded.request(method, path)
            if route.path == "/health":
                assert response.status_code == 200, path
            else:
                assert response.status_code == 401, (method, path)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert response.json()["error"] == "Unauthorized"


def test_the_right_token_is_let_through_and_a_wrong_one_is_not(guarded: TestClient) -> None:
    right = guarded.get("/state-machines", headers={"Authorization": f"Bearer {TOKEN}"})
    wrong = guarded.get("/state-machines", headers={"Authorization": "Bearer nope"})
    basic = guarded.get("/state-machines", headers={"Authorization": f"Basic {TOKEN}"})
    non_ascii = guarded.get(
        "/state-machines", headers={"Authorization": "Bearer caf\u00e9".encode()}
    )

    assert right.status_code == 200
    assert wrong.status_code == basic.status_code == non_ascii.status_code == 401


def test_without_a_configured_token_no_header_is_needed(client: TestClient) -> None:
    assert client.get("/state-machines").status_code == 200


def test_the_openapi_document_is_public_and_declares_the_bearer_scheme(
    guarded: TestClient,
) -> None:
    response = guarded.get("/openapi.json")

    assert response.status_code == 200
    schemes = response.json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_an_empty_token_setting_means_no_token(
    api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    unset = make_client(Settings(**api_settings.model_dump(exclude={"api_token"}), api_token=""))

    assert unset.get("/state-machines").status_code == 200


def test_with_a_token_the_docs_stay_public_and_carry_no_secret(guarded: TestClient) -> None:
    # Decision: docs hold no data, only the published interface; Swagger UI must
    # read the schema before a user can enter the token.
    for path in ("/docs", "/redoc", "/openapi.json"):
        response = guarded.get(path)
        assert response.status_code == 200, path
        assert TOKEN not in response.text
    assert guarded.get("/state-machines").status_code == 401


def test_the_docs_can_be_turned_off(
    api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    hidden = make_client(api_settings.model_copy(update={"api_docs": False}))

    for path in ("/docs", "/redoc", "/openapi.json"):
        assert hidden.get(path).status_code == 404, path
    assert hidden.get("/health").status_code == 200
