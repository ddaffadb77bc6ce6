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


SECRETS = (
    "DATABASE_URL", "MIGRATION_DATABASE_URL", "SUPERUSER_DATABASE_URL", "REDIS_URL",
    "OPENROUTER_API_KEY", "EMBEDDING_API_KEY", "SMTP_URL", "BUDGET_ALERT_WEBHOOK_URL",
)  # fmt: skip


def secret_values(settings: Settings) -> dict[str, object]:
    return {
        setting.metadata["env"]: getattr(getattr(settings, section.name), setting.name)
        for section in dataclasses.fields(Settings)
        for setting in dataclasses.fields(section.default_factory)  # type: ignore[arg-type]
        if setting.metadata["env"] in SECRETS
    }


def test_every_secret_can_come_from_a_file_as_mounted_secrets_do(tmp_path: Path) -> None:
    env = {}
    for name in SECRETS:
        mounted = tmp_path / name.lower()
        # Mounted secrets often end with a newline.
        mounted.write_text(f"value-of-{name}\n")
        env[f"{name}_FILE"] = str(mounted)
    env["BUDGET_ALERT_EMAIL"] = "ops@example.com"
    assert secret_values(Settings.from_env(env)) == {name: f"value-of-{name}" for name in SECRETS}


def test_a_secret_set_both_ways_is_refused_naming_both(tmp_path: Path) -> None:
    mounted = tmp_path / "key"
    mounted.write_text("sk-from-file")
    with pytest.raises(SettingsError, match="set OPENROUTER_API_KEY or OPENROUTER_API_KEY_FILE"):
        Settings.from_env(
            {"OPENROUTER_API_KEY": "sk-inline", "OPENROUTER_API_KEY_FILE": str(mounted)}
        )


@pytest.mark.parametrize(("content", "problem"), [(None, "cannot be read"), ("\n", "is empty")])
def test_a_secret_file_that_cannot_serve_names_the_variable_and_the_file(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    mounted = tmp_path / "database-url"
    if content is not None:
        mounted.write_text(content)
    with pytest.raises(SettingsError, match=f"DATABASE_URL_FILE names {mounted}, which {problem}"):
        Settings.from_env({"DATABASE_URL_FILE": str(mounted)})


def test_settings_that_are_not_secrets_are_not_read_from_files(tmp_path: Path) -> None:
    mounted = tmp_path / "top-k"
    mounted.write_text("7")
    assert Settings.from_env({"SEARCH_TOP_K_FILE": str(mounted)}).retrieval.top_k == 10
