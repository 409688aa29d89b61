"""The Grafana dashboard: valid PromQL (checked by promtool) on metrics the code defines, and a job -> trace link."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "poster-layers.json").read_text())
DEFINING = ["services/common/metrics.py", "services/describe/metrics.py", "gateway/metrics.py"]


def prometheus_queries() -> list[str]:
    return [
        target["expr"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr} for index, expr in enumerate(prometheus_queries())
    ]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run(["promtool", "check", "rules", "queries.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_it_charts_is_defined_in_code() -> None:
    defined = {"up"}
    for path in DEFINING:
        defined |= set(re.findall(r'"((?:poster|gateway)_[a-z_]+)"', (ROOT / path).read_text()))
    used = set()
    for expr in prometheus_queries():
        for name in re.findall(r"\b((?:poster|gateway)_[a-z_]+|up)\b(?=[{\[ )]|$)", expr):
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used and used <= defined, used - defined
    assert {"poster_job_duration_seconds", "poster_jobs_total", "poster_queue_length", "poster_gpu_memory_used_bytes",
            "poster_job_gpu_seconds", "poster_grpc_server_handling_seconds", "poster_job_quality_score"} <= used


def test_a_job_links_to_its_trace() -> None:
    panels = DASHBOARD["panels"]
    exemplar_panels = [panel for panel in panels if any(t.get("exemplar") for t in panel.get("targets", []))]
    assert exemplar_panels, "job duration exemplars carry the trace_id"
    links = [
        link
        for panel in DASHBOARD["panels"]
        for override in panel.get("fieldConfig", {}).get("overrides", [])
        if override["matcher"]["options"] == "trace_id"
        for prop in override["properties"]
        for link in prop["value"]
    ]
    assert links and "${__value.raw}" in links[0]["url"] and "${tempo}" in links[0]["url"]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
