"""The Helm chart (helm/poster-layers), checked without the helm binary: values against values.schema.json,
every value a template reads exists, templates are YAML once directives are stripped, and the settings and
limits they pass are real."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from services.common.config import Settings
from services.common.redis_client import SentinelTarget, parse_sentinel_url

CHART = Path(__file__).resolve().parents[2] / "helm" / "poster-layers"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
TEMPLATES = sorted((CHART / "templates").glob("*.yaml"))
DIRECTIVE = re.compile(r"\{\{-?.*?-?\}\}")


def lookup(tree: object, path: str) -> bool:
    for key in path.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def stripped(text: str) -> str:
    """The template with directive-only lines dropped and inline directives replaced by a scalar."""
    lines = [line for line in text.splitlines() if DIRECTIVE.sub("", line).strip() or not line.strip()]
    return "\n".join(DIRECTIVE.sub("x", line) for line in lines)


def test_the_values_match_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(VALUES)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("securityContext.allowPrivilegeEscalation", True),
        ("podSecurityContext.runAsNonRoot", False),
        ("config.REDIS_URL", "redis://:secret@redis:6379"),
        ("services.decompose.protocol", "tcp"),
        ("redis.existingSecret", ""),
        ("image.cpuTag", "latest"),
        ("storage.blobRoot", "/data/blobs"),
        ("storage.blobRoot", "gs://bucket/blobs"),  # the images carry an S3 client only
        ("storage.s3EndpointUrl", "minio:9000"),
        ("secrets.internalToken", ""),
        ("config.INTERNAL_TOKEN", "inlined-secret"),
        ("redis.sentinel.hosts", []),
        ("redis.sentinel.hosts", ["redis://sentinel:26379"]),
        ("redis.sentinel.hosts", ["sentinel"]),
        ("redis.sentinel.masterName", "my/master"),
        ("redis.sentinel.db", -1),
    ],
)
def test_the_schema_rejects_unsafe_or_wrong_values(path: str, bad: object) -> None:
    values = copy.deepcopy(VALUES)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[last] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(values)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_every_value_a_template_reads_exists(template: Path) -> None:
    text = template.read_text()
    paths = re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text)
    missing = [path for path in paths if not lookup(VALUES, path.rstrip("."))]
    assert not missing
    # Inside `range $name, $svc := .Values.services`: every service has the field, but for optional ones
    # (read only under `with $svc.field`), which at least one service sets and the schema knows.
    optional = set(re.findall(r"with \$svc\.([A-Za-z0-9_]+)", text))
    for field in set(re.findall(r"\$svc\.([A-Za-z0-9_.]+)", text)):
        services = VALUES["services"].values()
        if field in optional:
            assert any(lookup(service, field) for service in services), field
            assert field in SCHEMA["$defs"]["service"]["properties"], field
        else:
            assert all(lookup(service, field) for service in services), field


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_templates_are_yaml_once_directives_are_stripped(template: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(stripped(template.read_text())) if doc]
    assert documents and all(doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"] for doc in documents)


def test_the_chart_has_the_kinds_operations_needs() -> None:
    kinds = {
        doc["kind"]
        for template in TEMPLATES
        for doc in yaml.safe_load_all(stripped(template.read_text()))
        if doc
    }
    assert {
        "Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication",
        "PodDisruptionBudget", "Ingress", "PersistentVolumeClaim", "ConfigMap",
    } <= kinds


def test_pods_outlive_their_drain() -> None:
    for name, service in VALUES["services"].items():
        grace = service.get("shutdownGraceSeconds", VALUES["drain"]["shutdownGraceSeconds"])
        assert service["terminationGracePeriodSeconds"] > VALUES["drain"]["drainDelaySeconds"] + grace, name
    # A qwen decomposition at 1024 (50 steps of about 3.3 s on an H200, docs/benchmarks.md) finishes in the drain.
    assert VALUES["services"]["decompose"]["shutdownGraceSeconds"] > 50 * 3.3
    runner_grace = VALUES["services"]["runner"]["terminationGracePeriodSeconds"]
    assert runner_grace > float(VALUES["config"]["JOB_TIMEOUT_S"])  # a job in progress finishes first


def test_every_setting_the_chart_passes_is_a_real_setting() -> None:
    fields = Settings.model_fields
    assert all(key.lower() in fields for key in VALUES["config"])
    configmap = (CHART / "templates" / "configmap.yaml").read_text()
    named = re.findall(r"POSTER_([A-Z_]+):", configmap)
    assert named and all(name.lower() in fields for name in named), named
    deployments = (CHART / "templates" / "deployments.yaml").read_text()
    assert all(name.lower() in fields for name in re.findall(r"name: POSTER_([A-Z_]+)", deployments))
    for name, service in VALUES["services"].items():
        if service["protocol"] == "grpc":
            assert f"{name}_port" in fields and f"{name}_target" in fields
            assert getattr(Settings(), f"{name}_port") == service["port"]


def test_decompose_runs_on_gpu_spot_nodes_and_scales_on_the_stream() -> None:
    decompose = VALUES["services"]["decompose"]
    assert decompose["gpu"] >= 1 and decompose["image"] == "cuda" and decompose["nodeSelector"]
    keys = {toleration["key"] for toleration in decompose["tolerations"]}
    assert "nvidia.com/gpu" in keys and any("spot" in key for key in keys)
    deployments = (CHART / "templates" / "deployments.yaml").read_text()
    assert "nvidia.com/gpu: {{ $svc.gpu }}" in deployments and "grpc:\n              port:" in deployments
    keda = (CHART / "templates" / "keda.yaml").read_text()
    assert "type: redis-streams" in keda and "type: redis-sentinel-streams" in keda
    # Scaled to zero, only the group's lag can wake the pool (no runner reads, so nothing is pending);
    # pending entries keep a busy pool from being scaled down under its jobs.
    assert 'range $measure := list "lagCount" "pendingEntriesCount"' in keda and "activationLagCount" in keda
    assert VALUES["keda"]["minReplicaCount"] == 0 and VALUES["keda"]["stream"] == Settings().queue_stream
    assert int(VALUES["keda"]["lagCount"]) >= 1 and VALUES["keda"]["activationLagCount"] == "0"


def test_the_ingress_has_tls_from_cert_manager_and_no_secret_is_inlined() -> None:
    assert VALUES["ingress"]["annotations"]["cert-manager.io/cluster-issuer"]
    assert "secretName: {{ .Values.ingress.tlsSecretName }}" in (CHART / "templates" / "ingress.yaml").read_text()
    text = (CHART / "values.yaml").read_text()
    assert not re.search(r"redis://|-----BEGIN|https://hooks\.slack\.com|sk-[A-Za-z0-9]", text)


def test_the_ingress_lets_through_every_body_the_gateway_takes() -> None:
    settings = Settings()
    gateway_limit = settings.gateway_max_batch_files * settings.max_upload_bytes + 1024 * 1024
    size = VALUES["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m") and int(size[:-1]) * 1024 * 1024 >= gateway_limit


def enclosing_blocks(text: str, marker: str) -> list[str]:
    """The template blocks (if/range/with) open where `marker` first appears, outermost first."""
    position = text.index(marker)
    stack: list[str] = []
    for match in DIRECTIVE.finditer(text[:position]):
        action = match.group(0).strip("{}- ")
        word = action.split(None, 1)[0] if action else ""
        if word in ("if", "range", "with", "define", "block"):
            stack.append(action)
        elif word == "end":
            stack.pop()
    return stack


def env_of(document: dict) -> list[dict]:
    return document["spec"]["template"]["spec"]["containers"][0]["env"]


DEPLOYMENTS = (CHART / "templates" / "deployments.yaml").read_text()


def test_every_deployment_gets_the_internal_token_from_a_secret() -> None:
    # Unconditional inside the per-service loop: every enabled service, the runner and the gateway included.
    assert enclosing_blocks(DEPLOYMENTS, "name: POSTER_INTERNAL_TOKEN") == [
        "range $name, $svc := .Values.services",
        "if $svc.enabled",
    ]
    documents = [doc for doc in yaml.safe_load_all(stripped(DEPLOYMENTS)) if doc and doc["kind"] == "Deployment"]
    assert documents
    for document in documents:
        [token] = [entry for entry in env_of(document) if entry["name"] == "POSTER_INTERNAL_TOKEN"]
        assert set(token) == {"name", "valueFrom"} and set(token["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    assert "secretKeyRef:\n                  name: {{ $.Values.secrets.internalToken }}\n" in DEPLOYMENTS
    assert VALUES["secrets"]["internalToken"] and "internal_token" in Settings.model_fields


def render_sentinel_url(values: dict, passwords: dict[str, str]) -> str:
    """The REDIS_URL value of the Sentinel branch as Helm, then Kubernetes' $(VAR) expansion, would make it."""
    [line] = [line for line in DEPLOYMENTS.splitlines() if "redis+sentinel://" in line]
    text = line.split('value: "', 1)[1].rsplit('"', 1)[0]

    def value(path: str) -> object:
        node: object = values
        for key in path.removeprefix("$.Values.").split("."):
            assert isinstance(node, dict)
            node = node[key]
        return node

    text = re.sub(r"\{\{ if (\S+) \}\}(.*?)\{\{ end \}\}", lambda m: m.group(2) if value(m.group(1)) else "", text)
    text = re.sub(r'\{\{ join "," (\S+) \}\}', lambda m: ",".join(value(m.group(1))), text)
    text = re.sub(r"\{\{ (\S+) \}\}", lambda m: str(value(m.group(1))), text)
    assert "{{" not in text
    return re.sub(r"\$\((\w+)\)", lambda m: passwords[m.group(1)], text)


@pytest.mark.parametrize("sentinel_key", ["", "sentinel-password"])
def test_the_sentinel_url_the_chart_builds_is_one_the_services_parse(sentinel_key: str) -> None:
    values = copy.deepcopy(VALUES)
    values["redis"]["sentinel"].update(enabled=True, db=2, sentinelPasswordSecretKey=sentinel_key)
    url = render_sentinel_url(values, {"REDIS_PASSWORD": "0f3a9c", "REDIS_SENTINEL_PASSWORD": "77be21"})
    hosts = values["redis"]["sentinel"]["hosts"]
    assert parse_sentinel_url(url) == SentinelTarget(
        sentinels=tuple((host.split(":")[0], int(host.split(":")[1])) for host in hosts),
        master_name=values["redis"]["sentinel"]["masterName"],
        db=2,
        password="0f3a9c",
        sentinel_password="77be21" if sentinel_key else None,
    )


def test_the_passwords_are_defined_before_the_url_that_uses_them() -> None:
    # Kubernetes expands $(VAR) only from variables listed earlier in the same container.
    [document] = [doc for doc in yaml.safe_load_all(stripped(DEPLOYMENTS)) if doc and doc["kind"] == "Deployment"]
    names = [entry["name"] for entry in env_of(document)]
    sentinel_url = next(i for i, entry in enumerate(env_of(document)) if "redis+sentinel" in str(entry.get("value")))
    assert names.index("REDIS_PASSWORD") < sentinel_url and names.index("REDIS_SENTINEL_PASSWORD") < sentinel_url


def test_keda_follows_the_same_sentinels_with_the_passwords_from_the_secret() -> None:
    keda = (CHART / "templates" / "keda.yaml").read_text()
    sentinel = keda.split("type: redis-sentinel-streams", 1)[1].split("{{- else }}", 1)[0]
    for field in ("addresses:", "sentinelMaster:", "databaseIndex:"):
        assert field in sentinel
    assert "join \",\" $.Values.redis.sentinel.hosts" in sentinel
    assert enclosing_blocks(keda, "parameter: sentinelPassword") == [
        "if .Values.keda.enabled",
        "if and .Values.redis.sentinel.enabled .Values.redis.sentinel.sentinelPasswordSecretKey",
    ]


def test_an_s3_bucket_takes_its_endpoint_and_credentials_from_values_and_a_secret() -> None:
    values = copy.deepcopy(VALUES)
    values["storage"] |= {
        "blobRoot": "s3://posters/blobs",
        "s3EndpointUrl": "http://minio.storage.svc:9000",
        "credentialsSecret": "poster-s3",
    }
    jsonschema.Draft202012Validator(SCHEMA).validate(values)
    configmap = (CHART / "templates" / "configmap.yaml").read_text()
    # fsspec hands FSSPEC_S3_ENDPOINT_URL to s3fs as endpoint_url (tests/integration/test_blobstore_s3.py).
    assert "FSSPEC_S3_ENDPOINT_URL: {{ . | quote }}" in configmap
    assert enclosing_blocks(configmap, "FSSPEC_S3_ENDPOINT_URL") == ["with .Values.storage.s3EndpointUrl"]
    deployments = (CHART / "templates" / "deployments.yaml").read_text()
    assert enclosing_blocks(deployments, "- secretRef:")[-1] == "with $.Values.storage.credentialsSecret"
