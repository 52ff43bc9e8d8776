"""Settings: defaults, the environment as input, and the cache."""

from __future__ import annotations

import pytest

from orchestrator.asl import limits
from orchestrator.settings import Settings, get_settings


def test_defaults_are_embedded_and_on_loopback() -> None:
    settings = Settings()

    assert settings.database_url == "sqlite:///orchestrator.db"
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.api_host == "127.0.0.1"
    assert settings.payload_max_bytes == 256 * 1024
    assert settings.handler_modules == []
    assert settings.api_token is None


def test_the_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", "postgresql://x@h/db")
    monkeypatch.setenv("ORCHESTRATOR_HANDLER_MODULES", "shop.handlers, billing")
    monkeypatch.setenv("ORCHESTRATOR_API_TOKEN", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "ignored: no prefix")

    settings = Settings()

    assert settings.database_url == "postgresql://x@h/db"
    assert settings.handler_modules == ["shop.handlers", "billing"]
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_handler_modules_may_be_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HANDLER_MODULES", '["a", "b.c"]')

    assert Settings().handler_modules == ["a", "b.c"]


def test_impossible_values_are_refused() -> None:
    with pytest.raises(ValueError, match="payload_max_bytes"):
        Settings(payload_max_bytes=0)
    with pytest.raises(ValueError, match="api_port"):
        Settings(api_port=70000)


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("ORCHESTRATOR_PAGE_SIZE", "50")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().page_size == 50


def test_the_engine_limit_settings_default_to_the_engine_limits() -> None:
    settings = Settings()

    assert settings.expression_timeout_ms == limits.EXPRESSION_TIMEOUT_MS == 1000
    assert settings.max_map_items == limits.MAX_MAP_ITEMS
    with pytest.raises(ValueError, match="expression_timeout_ms"):
        Settings(expression_timeout_ms=0)
    with pytest.raises(ValueError, match="max_map_items"):
        Settings(max_map_items=0)
