"""A loopback HTTP server that speaks Vertex AI's REST generateContent protocol, for tests of the real client.

It accepts `POST /v1/projects/{p}/locations/{l}/publishers/{pub}/models/{m}:generateContent` with a
JSON body, parses the body strictly into the API's own GenerateContentRequest message (an unknown
or mistyped field is a 400, as on Vertex AI), and answers with a GenerateContentResponse in JSON
(camelCase, usageMetadata) or a Google error body (`{"error": {"code", "message", "status"}}`).

What it answers is scripted: `enqueue(Reply(...))` sets the next requests' replies (an answer text,
an HTTP error, a delay); unscripted requests get a valid default answer computed from the image sent.
Every request is recorded, with the decoded image, and the most requests in flight at once is kept.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from google.cloud.aiplatform_v1 import GenerateContentRequest
from google.protobuf import json_format
from PIL import Image

_PATH = re.compile(
    r"^/v1/(?P<model>projects/[^/]+/locations/[^/]+/publishers/[^/]+/models/[^/:?]+):generateContent(\?.*)?$"
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
IMAGE_TOKENS = 258
"""Tokens Gemini counts for one image; the fake reports the same."""
DEFAULT_TEXT = "MODEL TEXT"
"""The text the default answer reads in every layer (to test that OCR text wins over it)."""


@dataclass(frozen=True)
class Reply:
    """What the server does with one request: an answer (the model's text), or an HTTP error; after a delay."""

    answer: str | None = None  # None: the default answer for the image sent
    status: int = 200
    message: str = ""  # the error message for a status >= 400
    delay_s: float = 0.0
    when: Callable[[Received], bool] | None = None  # only for a request this accepts; None: the next request


@dataclass(frozen=True)
class Received:
    """One request as the server understood it."""

    model: str  # the resource name in the path
    headers: dict[str, str]
    request: GenerateContentRequest
    image: np.ndarray | None  # the first inline PNG/JPEG part, decoded to RGB; None without one
    prompt: str  # the text parts of the contents, joined


def default_answer(received: Received) -> str:
    """A valid answer that depends on what was sent: the image's size, a kind the engine did not say."""
    height, width = (0, 0) if received.image is None else received.image.shape[:2]
    return json.dumps(
        {
            "name": f"model layer {width}x{height}",
            "kind": "image",
            "description": f"A layer the model saw as {width} by {height} pixels.",
            "text": DEFAULT_TEXT,
        }
    )


@dataclass
class VertexServer:
    """The fake Vertex AI endpoint on 127.0.0.1 and a free port; use as a context manager."""

    received: list[Received] = field(default_factory=list)
    max_in_flight: int = 0
    _script: deque[Reply] = field(default_factory=deque)
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """The api_endpoint a client is given: http://127.0.0.1:PORT."""
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def calls(self) -> int:
        """generateContent requests received so far (well-formed or not)."""
        with self._lock:
            return len(self.received)

    def enqueue(self, *replies: Reply) -> None:
        """The next requests get these replies, in order; requests after them get the default answer.

        A reply with `when` waits in the queue for a request it accepts; the others are taken in turn.
        """
        with self._lock:
            self._script.extend(replies)

    def start(self) -> VertexServer:
        """Listens on 127.0.0.1:0 in a background thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-vertex", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops listening; delayed replies still pending are abandoned."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> VertexServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            for reply in self._script:
                if reply.when is None or reply.when(received):
                    self._script.remove(reply)
                    return reply
            return Reply()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler_for(server: VertexServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read `received` instead."""

        def do_POST(self) -> None:
            server._enter()
            try:
                self._generate_content()
            finally:
                server._leave()

        def _generate_content(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            match = _PATH.match(self.path)
            if match is None:
                self._error(404, f"no such method: POST {self.path}")
                return
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                self._error(400, "the body must be application/json")
                return
            try:
                request = GenerateContentRequest()
                json_format.Parse(body, GenerateContentRequest.pb(request))
            except (json_format.ParseError, UnicodeDecodeError) as error:
                self._error(400, f"Invalid JSON payload received. {error}")
                return
            if request.model and request.model != match["model"]:
                self._error(400, f"model {request.model!r} in the body is not the one in the path")
                return
            if not request.contents:
                self._error(400, "contents is not specified")
                return
            received = Received(
                model=match["model"],
                headers=dict(self.headers.items()),
                request=request,
                image=_first_image(request),
                prompt="\n".join(part.text for content in request.contents for part in content.parts if part.text),
            )
            reply = server._next_reply(received)
            if reply.delay_s and server._stopping.wait(reply.delay_s):
                return
            if reply.status >= 400:
                self._error(reply.status, reply.message or f"scripted {reply.status}")
                return
            answer = default_answer(received) if reply.answer is None else reply.answer
            self._send(200, _response(received, answer))

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "")}})

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

    return Handler


def _first_image(request: GenerateContentRequest) -> np.ndarray | None:
    for content in request.contents:
        for part in content.parts:
            if part.inline_data.mime_type in ("image/png", "image/jpeg"):
                with Image.open(io.BytesIO(part.inline_data.data)) as image:
                    return np.asarray(image.convert("RGB"))
    return None


def _response(received: Received, answer: str) -> dict:
    prompt_tokens = IMAGE_TOKENS * (received.image is not None) + len(received.prompt) // 4
    output_tokens = max(len(answer) // 4, 1)
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": received.model.rsplit("/", 1)[-1],
        "responseId": f"fake-{time.monotonic_ns()}",
    }
