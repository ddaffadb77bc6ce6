"""Settings are read once from environment variables into frozen sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chatbot_server.config import Settings, SettingsError


def test_unset_variables_keep_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.server.grpc_address == "127.0.0.1:50051"
    assert settings.database.embedded
    assert settings.retrieval.top_k == 10
    assert settings.llm.max_output_tokens == 1024


def test_variables_land_in_their_sections() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://app@db/chatbot", "SEARCH_TOP_K": "7", "LOG_LEVEL": "debug"}
    )
    assert settings.database.url == "postgresql://app@db/chatbot"
    assert not settings.database.embedded
    assert settings.retrieval.top_k == 7
    assert settings.logging.level == "DEBUG"


def test_sections_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.retrieval.top_k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SEARCH_TOP_K": "many"}, "SEARCH_TOP_K"),
        ({"SEARCH_TOP_K": "51"}, "SEARCH_TOP_K"),
        ({"LLM_TEMPERATURE": "nan"}, "LLM_TEMPERATURE"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"CHUNK_SIZE_CHARS": "300", "CHUNK_OVERLAP_CHARS": "300"}, "CHUNK_OVERLAP_CHARS"),
    ],
)
def test_a_malformed_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_every_variable_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    names = [
        setting.metadata["env"]
        for section in dataclasses.fields(Settings)
        for setting in dataclasses.fields(section.default_factory)  # type: ignore[arg-type]
    ]
    # RATE_LIMIT_* are documented together in their own table.
    missing = [n for n in names if f"`{n}`" not in readme and not n.startswith("RATE_LIMIT_")]
    assert missing == []
