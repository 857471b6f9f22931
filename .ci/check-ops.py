#!/usr/bin/env python3
"""Checks the operator files in config/ against the code: the Grafana dashboard
parses and uses the ${DS_PROMETHEUS} input, every metric the dashboard and the
alert rules (and their tests) reference is declared in actors/src/telemetry.rs,
and every dashboard query is valid PromQL (through `promtool check rules`).

Usage: .ci/check-ops.py [repository root]   (default: the parent of .ci/)
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
TELEMETRY = ROOT / "actors/src/telemetry.rs"
DASHBOARD = ROOT / "config/grafana/broadside-dashboard.json"
RULE_FILES = [ROOT / "config/prometheus/alerts.yml", ROOT / "config/prometheus/alerts_test.yml"]
METRIC = re.compile(r"\bbroadside_[a-z0-9_]+")
# What Grafana substitutes at query time; any valid value will do for a syntax check.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}


def declared_metrics():
    """Names in telemetry.rs, plus the series a histogram is exported as."""
    source = TELEMETRY.read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', source))
    if not consts:
        sys.exit(f"no metric constants found in {TELEMETRY}")
    names = set(consts.values())
    for const in re.findall(r"describe_histogram!\(\s*(\w+)", source):
        names |= {consts[const] + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def dashboard_queries(errors):
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as error:
        errors.append(f"{DASHBOARD}: not JSON: {error}")
        return []
    if not any(i.get("name") == "DS_PROMETHEUS" for i in dashboard.get("__inputs", [])):
        errors.append(f"{DASHBOARD}: no DS_PROMETHEUS datasource input")
    queries = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"{DASHBOARD}: panel {panel.get('title')!r} not on ${{DS_PROMETHEUS}}")
        for target in panel.get("targets", []):
            queries.append((panel.get("title"), target["expr"]))
    return queries


def check_queries_parse(queries, errors):
    rules = []
    for i, (title, expr) in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
        # JSON is YAML, so no YAML library is needed.
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, file)
        file.flush()
        result = subprocess.run(
            ["promtool", "check", "rules", file.name], capture_output=True, text=True
        )
    if result.returncode != 0:
        errors.append("dashboard queries do not parse:\n" + result.stdout + result.stderr)


def main():
    errors = []
    declared = declared_metrics()
    queries = dashboard_queries(errors)
    sources = {DASHBOARD: "\n".join(expr for _, expr in queries)}
    sources.update({path: path.read_text() for path in RULE_FILES})
    for path, text in sources.items():
        referenced = set(METRIC.findall(text))
        if not referenced:
            errors.append(f"{path}: references no broadside_ metric at all")
        for name in sorted(referenced - declared):
            errors.append(f"{path}: {name} is not declared in {TELEMETRY.relative_to(ROOT)}")
    if queries:
        check_queries_parse(queries, errors)
    if errors:
        sys.exit("\n".join(["operator files out of step with the code:"] + errors))
    print(f"dashboard: {len(queries)} queries parse; every referenced metric is declared")


main()
