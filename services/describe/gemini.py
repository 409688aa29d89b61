"""The gemini describer: Gemini on Vertex AI through google-cloud-aiplatform's API client.

Calls google.cloud.aiplatform_v1.PredictionServiceClient.generate_content from a thread pool (one
client per thread) with the layer as an inline PNG and a response schema for JSON. Rate limits
(429) and 503s are retried with exponential back-off inside the layer's time; an answer that is not
the JSON asked for is asked again once. Whatever still fails raises DescribeFailed, and the caller
(services/describe/coordinator.py) gives the layer the local describer's answer instead.

The engine's kind and OCR text win over the model's: the model supplies the name and the
description, and the text only where OCR found none.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import google.auth
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry, if_exception_type
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError
from google.cloud.aiplatform_v1 import (
    Blob,
    Content,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    Part,
    PredictionServiceClient,
)

from services.common.layers import Layer
from services.describe.base import DescribeFailed, Description
from services.describe.metrics import DescribeMetrics
from services.describe.prompt import (
    INSTRUCTIONS,
    PROMPT_VERSION,
    RESPONSE_SCHEMA,
    Answer,
    InvalidAnswer,
    layer_prompt,
    parse_answer,
)
from services.describe.render import layer_png

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
RETRIED = (api_exceptions.TooManyRequests, api_exceptions.ServiceUnavailable)
"""Errors worth another try after a back-off: quota (429) and an overloaded service (503)."""
ANSWER_ATTEMPTS = 2
"""An invalid answer is asked for once more, then given up."""


@dataclass(frozen=True)
class GeminiConfig:
    """Where the model is and how it is called."""

    project: str
    location: str = "us-central1"
    model: str = "gemini-2.5-flash"
    endpoint: str = ""  # host[:port] or URL; empty: the location's Vertex AI endpoint
    transport: str = "rest"
    timeout_s: float = 20.0  # one layer, retries included
    concurrency: int = 8
    retry_initial_s: float = 1.0
    retry_max_s: float = 8.0
    image_max_side: int = 768
    max_output_tokens: int = 1024

    @property
    def model_path(self) -> str:
        """The model's resource name, as generateContent wants it."""
        if "/" in self.model:
            return self.model
        return f"projects/{self.project}/locations/{self.location}/publishers/google/models/{self.model}"

    @property
    def api_endpoint(self) -> str:
        """The API endpoint: the configured one, else the regional (or global) Vertex AI host."""
        if self.endpoint:
            return self.endpoint
        if self.location == "global":
            return "aiplatform.googleapis.com"
        return f"{self.location}-aiplatform.googleapis.com"

    @property
    def plaintext(self) -> bool:
        """True for an http:// endpoint (a local emulator): credentials must not travel over it."""
        return self.api_endpoint.startswith("http://")


class GeminiDescriber:
    """Describes layers with Gemini on Vertex AI; raises DescribeFailed when it cannot."""

    name = "gemini"

    def __init__(self, config: GeminiConfig, metrics: DescribeMetrics, credentials: Credentials | None = None) -> None:
        if not config.project and "/" not in config.model:
            raise ValueError("the gemini describer needs a Google Cloud project (POSTER_GEMINI_PROJECT)")
        if config.transport not in ("rest", "grpc"):
            raise ValueError(f"gemini transport {config.transport!r} is not rest or grpc")
        self._config = config
        self._metrics = metrics
        self._credentials = AnonymousCredentials() if config.plaintext and credentials is None else credentials
        self._credentials_lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="gemini")
        self.cache_version = f"gemini/{config.model_path}/prompt-{PROMPT_VERSION}"

    @property
    def config(self) -> GeminiConfig:
        """How this describer calls the model."""
        return self._config

    async def describe(self, layer: Layer, canvas_width: int, canvas_height: int) -> Description:
        """Describes one layer within the configured timeout; DescribeFailed says why it could not."""
        deadline = time.monotonic() + self._config.timeout_s
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(self._pool, self._request, layer)
        problem = ""
        for _ in range(ANSWER_ATTEMPTS):
            response = await loop.run_in_executor(self._pool, self._generate, request, deadline)
            try:
                answer = parse_answer(_answer_text(response))
            except InvalidAnswer as error:
                self._metrics.invalid_answers.labels(self._config.model).inc()
                problem = str(error)
                continue
            return self._merge(layer, answer)
        raise DescribeFailed(
            f"the model's answer was not the JSON asked for, {ANSWER_ATTEMPTS} times (last: {problem})",
            "invalid_answer",
        )

    def close(self) -> None:
        """Stops the worker threads once their calls end."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _request(self, layer: Layer) -> GenerateContentRequest:
        image = layer_png(layer, self._config.image_max_side)
        return GenerateContentRequest(
            model=self._config.model_path,
            system_instruction=Content(parts=[Part(text=INSTRUCTIONS)]),
            contents=[
                Content(
                    role="user",
                    parts=[Part(inline_data=Blob(mime_type="image/png", data=image)), Part(text=layer_prompt(layer))],
                )
            ],
            generation_config=GenerationConfig(
                temperature=0.0,
                candidate_count=1,
                max_output_tokens=self._config.max_output_tokens,
                response_mime_type="application/json",
                response_schema=RESPONSE_SCHEMA,
            ),
        )

    def _generate(self, request: GenerateContentRequest, deadline: float) -> GenerateContentResponse:
        """generate_content with back-off on 429/503 until `deadline` (time.monotonic()); runs in the pool."""
        model = self._config.model

        def attempt() -> GenerateContentResponse:
            timeout = max(deadline - time.monotonic(), 0.05)
            try:
                response = self._client().generate_content(request=request, retry=None, timeout=timeout)
            except api_exceptions.GoogleAPICallError as error:
                self._metrics.model_calls.labels(model, f"http_{error.code or 'error'}").inc()
                raise
            except requests.Timeout:
                self._metrics.model_calls.labels(model, "timeout").inc()
                raise
            except (requests.RequestException, OSError):
                self._metrics.model_calls.labels(model, "unreachable").inc()
                raise
            self._metrics.model_calls.labels(model, "ok").inc()
            self._count_tokens(response)
            return response

        retry = Retry(
            predicate=if_exception_type(*RETRIED),
            initial=self._config.retry_initial_s,
            maximum=self._config.retry_max_s,
            multiplier=2.0,
            timeout=max(deadline - time.monotonic(), 0.0),
        )
        try:
            return retry(attempt)()
        except api_exceptions.RetryError as error:
            raise DescribeFailed(
                f"Vertex AI kept refusing until the layer's {self._config.timeout_s:g} s were spent: {error.cause}",
                "rate_limited",
            ) from None
        except api_exceptions.GoogleAPICallError as error:
            raise DescribeFailed(f"Vertex AI answered {error.code}: {error.message}", "api_error") from None
        except requests.Timeout:
            raise DescribeFailed(f"Vertex AI did not answer within {self._config.timeout_s:g} s", "timeout") from None
        except (requests.RequestException, OSError) as error:
            endpoint = self._config.api_endpoint
            raise DescribeFailed(f"Vertex AI at {endpoint} unreachable: {error}", "unreachable") from None
        except GoogleAuthError as error:
            raise DescribeFailed(f"no usable Google credentials: {error}", "credentials") from None

    def _client(self) -> PredictionServiceClient:
        """This thread's client; a REST session is not shared between threads."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = PredictionServiceClient(
                transport=self._config.transport,
                credentials=self._shared_credentials(),
                client_options=ClientOptions(api_endpoint=self._config.api_endpoint),
            )
            self._local.client = client
        return client

    def _shared_credentials(self) -> Credentials:
        """The standard Google environment's credentials, found once and shared by every thread's client."""
        with self._credentials_lock:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=SCOPES)
            return self._credentials

    def _count_tokens(self, response: GenerateContentResponse) -> None:
        usage = response.usage_metadata
        for kind, count in (
            ("prompt", usage.prompt_token_count),
            ("output", usage.candidates_token_count + usage.thoughts_token_count),
            ("total", usage.total_token_count),
        ):
            if count:
                self._metrics.tokens.labels(self._config.model, kind).inc(count)

    def _merge(self, layer: Layer, answer: Answer) -> Description:
        # The engine's kind and OCR text win; the model's text fills in only where OCR found none.
        return Description(
            name=answer.name,
            kind=layer.kind,
            description=answer.description,
            text=layer.text or answer.text,
            describer=self.name,
        )


def _answer_text(response: GenerateContentResponse) -> str:
    """The text of the first candidate; InvalidAnswer when there is none (blocked, empty)."""
    if not response.candidates:
        blocked = response.prompt_feedback.block_reason
        raise InvalidAnswer(f"no candidate in the answer{f' (blocked: {blocked.name})' if blocked else ''}")
    candidate = response.candidates[0]
    text = "".join(part.text for part in candidate.content.parts if part.text)
    if not text:
        raise InvalidAnswer(f"an empty answer (finish reason {candidate.finish_reason.name})")
    return text
