"""The alert rules, their unit tests, the scrape config and Alertmanager's config pass Prometheus's own checkers.

promtool and amtool come from Debian's prometheus and prometheus-alertmanager (scripts/setup.sh installs them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
METRICS = Path(__file__).resolve().parents[2] / "services" / "common" / "metrics.py"


def run(tool: str, *args: str, cwd: Path) -> str:
    assert shutil.which(tool), f"{tool} is not installed: run scripts/setup.sh"
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_are_valid() -> None:
    assert "SUCCESS: 6 rules found" in run("promtool", "check", "rules", "alerts.yml", cwd=PROMETHEUS)


def test_every_rule_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    assert "SUCCESS" in run("promtool", "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)


def test_every_alert_has_a_firing_and_a_quiet_test() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert alerts == fired == quiet


def test_the_rules_use_only_metrics_the_code_defines() -> None:
    defined = set(re.findall(r'"(poster_[a-z_]+)"', METRICS.read_text()))
    used = set(re.findall(r"\b(poster_[a-z_]+?)(?:_sum|_count|_bucket)?\b", (PROMETHEUS / "alerts.yml").read_text()))
    assert used and used <= defined, used - defined


def test_the_scrape_config_is_valid() -> None:
    run("promtool", "check", "config", "prometheus.yml", cwd=PROMETHEUS)


def test_alertmanager_sends_to_slack_with_the_webhook_from_a_file() -> None:
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    assert "SUCCESS" in run("amtool", "check-config", str(config), cwd=DEPLOY)
    receivers = yaml.safe_load(config.read_text())["receivers"]
    slack = [entry for receiver in receivers for entry in receiver.get("slack_configs", [])]
    assert slack and all(entry["api_url_file"].startswith("/etc/alertmanager/secrets/") for entry in slack)
    assert "hooks.slack.com" not in config.read_text()


@pytest.mark.parametrize("broken", ["expr: poster_queue_length > ", "for: soon"])
def test_promtool_rejects_a_broken_rule(tmp_path: Path, broken: str) -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    text = text.replace("expr: max(poster_queue_length) > 50", broken if broken.startswith("expr") else "expr: up")
    if broken.startswith("for"):
        text = text.replace("for: 10m", broken, 1)
    (tmp_path / "alerts.yml").write_text(text)
    done = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode != 0


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    runbook = (DEPLOY.parent / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
               for heading in re.findall(r"^## (.+)$", runbook, flags=re.M)}
    rules = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    for rule in rules:
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, rule["alert"]
