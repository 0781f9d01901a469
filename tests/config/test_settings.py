"""Settings checked at start: the storage and Event Grid alternatives (a key, or an Entra identity),
the URLs they need, and one message naming every problem."""
from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from shared.config.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(b"k" * 32).decode()
TABLE_ENDPOINT = "https://anteroomdata.table.core.windows.net"
TOPIC = "https://anteroom.westeurope-1.eventgrid.azure.net/api/events"
INSIGHTS = ("InstrumentationKey=00000000-0000-0000-0000-000000000001;"
            "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/")


def _env(**overrides: str | None) -> dict[str, str]:
    env = {
        "ANTEROOM_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "ANTEROOM_ACCESS_KEY": KEY,
        "ANTEROOM_RESOURCE_ID": str(uuid.uuid4()),
        "ANTEROOM_TOKEN_SIGNING_KEY": KEY,
        "WEBSITE_HOSTNAME": "anteroom.azurewebsites.net",
    }
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def _problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    return str(refused.value)


def test_the_account_url_alone_reaches_storage_with_the_identity():
    settings = Settings.from_env(_env(ANTEROOM_STORAGE_CONNECTION_STRING=None,
                                      ANTEROOM_STORAGE_ACCOUNT_URL=TABLE_ENDPOINT + "/",
                                      AZURE_CLIENT_ID="6A1B3B1E-55A2-4C5E-9C39-6D0D1A5E4D11"))
    assert settings.storage_connection_string is None
    assert settings.storage_account_url == TABLE_ENDPOINT
    assert settings.azure_client_id == "6a1b3b1e-55a2-4c5e-9c39-6d0d1a5e4d11"
    assert settings.uses_entra


def test_a_connection_string_and_a_topic_key_use_no_identity():
    settings = Settings.from_env(_env(ANTEROOM_EVENTGRID_ENDPOINT=TOPIC, ANTEROOM_EVENTGRID_KEY="topic-key"))
    assert settings.storage_account_url is None and not settings.uses_entra


def test_a_topic_without_a_key_is_reached_with_the_identity():
    settings = Settings.from_env(_env(ANTEROOM_EVENTGRID_ENDPOINT=TOPIC))
    assert settings.eventgrid_key is None and settings.uses_entra


def test_both_storage_settings_are_refused():
    message = _problems(_env(ANTEROOM_STORAGE_ACCOUNT_URL=TABLE_ENDPOINT))
    assert "ANTEROOM_STORAGE_CONNECTION_STRING and ANTEROOM_STORAGE_ACCOUNT_URL are alternatives" in message


def test_neither_storage_setting_is_refused():
    message = _problems(_env(ANTEROOM_STORAGE_CONNECTION_STRING=None))
    assert "ANTEROOM_STORAGE_CONNECTION_STRING or ANTEROOM_STORAGE_ACCOUNT_URL is required" in message


@pytest.mark.parametrize("url", [
    "http://anteroomdata.table.core.windows.net",  # a token never goes over plain HTTP
    "anteroomdata.table.core.windows.net",
    "https://",
    "https://anteroomdata.table.core.windows.net:port",
    "https://anteroomdata.table.core.windows.net/?sv=2024-01-01&sig=abc",  # a SAS belongs in a connection string
])
def test_a_malformed_account_url_is_refused(url):
    message = _problems(_env(ANTEROOM_STORAGE_CONNECTION_STRING=None, ANTEROOM_STORAGE_ACCOUNT_URL=url))
    assert "ANTEROOM_STORAGE_ACCOUNT_URL must be an https URL" in message


def test_a_topic_key_without_a_topic_is_refused():
    assert "ANTEROOM_EVENTGRID_KEY is set without ANTEROOM_EVENTGRID_ENDPOINT" in _problems(
        _env(ANTEROOM_EVENTGRID_KEY="topic-key"))


def test_a_plain_http_topic_needs_its_key():
    message = _problems(_env(ANTEROOM_EVENTGRID_ENDPOINT="http://127.0.0.1:9/api/events"))
    assert "ANTEROOM_EVENTGRID_ENDPOINT must be an https URL when no ANTEROOM_EVENTGRID_KEY is set" in message
    # With the key, a plain HTTP topic (localdev's --http) stays allowed.
    Settings.from_env(_env(ANTEROOM_EVENTGRID_ENDPOINT="http://127.0.0.1:9/api/events", ANTEROOM_EVENTGRID_KEY="k"))


def test_a_client_id_that_is_not_a_guid_is_refused():
    assert "AZURE_CLIENT_ID must be a GUID" in _problems(_env(AZURE_CLIENT_ID="anteroom-identity"))


@pytest.mark.parametrize("value", ["InstrumentationKey=not-a-guid", "just text", "IngestionEndpoint=https://x/",
                                   INSIGHTS.replace("https://", "ftp://")])
def test_a_malformed_application_insights_connection_string_is_refused(value):
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING must be an Application Insights connection string" in _problems(
        _env(APPLICATIONINSIGHTS_CONNECTION_STRING=value))


def test_an_application_insights_connection_string_is_kept():
    assert Settings.from_env(_env(APPLICATIONINSIGHTS_CONNECTION_STRING=INSIGHTS)).telemetry_connection_string == INSIGHTS


def test_one_message_names_every_problem():
    message = _problems(_env(
        ANTEROOM_STORAGE_ACCOUNT_URL="http://anteroomdata.table.core.windows.net",
        ANTEROOM_EVENTGRID_KEY="topic-key",
        ANTEROOM_ACCESS_KEY=None,
        AZURE_CLIENT_ID="nope",
        APPLICATIONINSIGHTS_CONNECTION_STRING="nope",
    ))
    expected = [
        "ANTEROOM_STORAGE_CONNECTION_STRING and ANTEROOM_STORAGE_ACCOUNT_URL are alternatives",
        "ANTEROOM_STORAGE_ACCOUNT_URL must be an https URL",
        "AZURE_CLIENT_ID must be a GUID",
        "ANTEROOM_ACCESS_KEY is required",
        "ANTEROOM_EVENTGRID_KEY is set without ANTEROOM_EVENTGRID_ENDPOINT",
        "APPLICATIONINSIGHTS_CONNECTION_STRING must be an Application Insights connection string",
    ]
    assert [problem for problem in expected if problem not in message] == []
    assert len(message.split("; ")) == len(expected)


class _Recording(dict):
    """The environment, noting every variable the settings read."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)


def _settings_read() -> set[str]:
    env = _Recording(_env())
    Settings.from_env(env)
    return env.read


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    assert sorted(name for name in _settings_read() if f"`{name}`" not in section) == []
    assert "Storage Table Data Contributor" in section and "EventGrid Data Sender" in section


def test_the_example_local_settings_list_every_setting_and_start_as_they_are():
    example = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))["Values"]
    host_set = {"WEBSITE_HOSTNAME"}  # Core Tools and Azure set it
    assert sorted(_settings_read() - host_set - set(example)) == []
    # Filled in where they are placeholders, the alternatives left empty are no contradiction.
    filled = {name: (KEY if value.startswith("<base64 of 32") else value) for name, value in example.items()}
    filled.update(ANTEROOM_RESOURCE_ID=str(uuid.uuid4()), ANTEROOM_CALLBACK_SIGNING_KEY="",
                  WEBSITE_HOSTNAME="localhost:7071")
    settings = Settings.from_env(filled)
    assert settings.storage_connection_string == "UseDevelopmentStorage=true" and not settings.uses_entra
