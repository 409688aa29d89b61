"""The gateway's Prometheus metrics (process-wide, like the default registry they live in)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "HTTP request latency by route template, method and status (for SSE: until the stream ends).",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SUBMISSIONS = Counter(
    "gateway_submissions_total",
    "Jobs of upload requests by outcome: accepted (new jobs), replayed (an Idempotency-Key retry got its earlier job), "
    "rejected (bad upload), rate_limited, over_quota, failed (ingest).",
    ["outcome"],
)
