"""The gemini describer's endpoint and model names, and which describers a configuration offers."""

from __future__ import annotations

import pytest
from google.auth.credentials import AnonymousCredentials
from prometheus_client import CollectorRegistry

from services.common.config import Settings
from services.common.errors import InvalidInput
from services.describe.build import build_describe, gemini_config
from services.describe.gemini import GeminiConfig, GeminiDescriber
from services.describe.metrics import DescribeMetrics
from services.describe.prompt import PROMPT_VERSION


def test_the_model_path_and_endpoint_follow_project_and_location() -> None:
    config = GeminiConfig(project="acme", location="europe-west4", model="gemini-2.5-flash")
    assert config.model_path == "projects/acme/locations/europe-west4/publishers/google/models/gemini-2.5-flash"
    assert config.api_endpoint == "europe-west4-aiplatform.googleapis.com" and not config.plaintext
    assert GeminiConfig(project="acme", location="global").api_endpoint == "aiplatform.googleapis.com"
    tuned = "projects/acme/locations/us-central1/endpoints/123"
    assert GeminiConfig(project="", model=tuned).model_path == tuned
    assert GeminiConfig(project="acme", endpoint="http://127.0.0.1:9").plaintext


def test_settings_map_onto_the_gemini_config() -> None:
    settings = Settings(
        gemini_project="acme", gemini_model="gemini-2.5-pro", describe_layer_budget_s=7, describe_concurrency=3
    )
    config = gemini_config(settings)
    assert (config.project, config.model, config.timeout_s, config.concurrency) == ("acme", "gemini-2.5-pro", 7, 3)


def test_gemini_is_offered_only_with_a_project_and_local_always() -> None:
    metrics = DescribeMetrics(CollectorRegistry())
    plain = build_describe(Settings(gemini_project=""), metrics=metrics)
    assert plain.gemini is None and plain.describers.get("local").name == "local"
    with pytest.raises(InvalidInput, match="describer 'gemini' is not configured on this service; use one of local"):
        plain.describers.get("gemini")
    offered = build_describe(Settings(gemini_project="acme"), metrics=metrics, credentials=AnonymousCredentials())
    try:
        gemini = offered.describers.get("gemini")
        assert gemini.cache_version == (
            f"gemini/projects/acme/locations/us-central1/publishers/google/models/gemini-2.5-flash/prompt-{PROMPT_VERSION}"
        )
    finally:
        offered.close()


def test_a_gemini_describer_refuses_a_configuration_it_cannot_call() -> None:
    metrics = DescribeMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="needs a Google Cloud project"):
        GeminiDescriber(GeminiConfig(project=""), metrics)
    with pytest.raises(ValueError, match="transport 'soap'"):
        GeminiDescriber(GeminiConfig(project="acme", transport="soap"), metrics)
