"""docs/deployment.md promises to list every environment variable the code reads and every metric
``/metrics`` exposes: this keeps the promise true as settings and metrics are added."""

import re
from dataclasses import fields
from pathlib import Path

from empathy_os.defaults import Config

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "deployment.md").read_text()
#: Where the site and the library read the environment.
SOURCES = [ROOT / "empathy_site" / "settings.py", *sorted((ROOT / "empathy_os").glob("*.py")),
           *sorted((ROOT / "coordination").rglob("*.py"))]
#: Variables set for child processes or tests only, never read as settings.
NOT_SETTINGS = {"DJANGO_ALLOW_ASYNC_UNSAFE", "PYTHONUNBUFFERED"}
READS = re.compile(r"""(?:os\.environ\.get|env_str|env_bool|env_list|_env_flag|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
CONSTANT = re.compile(r"""^[A-Z_]*VARIABLE\s*=\s*["']([A-Z][A-Z0-9_]+)["']""", re.M)
METRIC = re.compile(r"""(?:gauge|counter)\(\s*["'](empathy_[a-z0-9_]+)["']""")


def variables_read() -> set[str]:
    found = {f"EMPATHY_{f.name.upper()}" for f in fields(Config)}
    for path in SOURCES:
        text = path.read_text()
        found |= set(READS.findall(text)) | set(CONSTANT.findall(text))
    return found - NOT_SETTINGS


def test_it_lists_every_environment_variable_the_code_reads():
    found = variables_read()
    assert {"REDIS_URL", "REDIS_CLUSTER", "EMPATHY_TASK_LEASE_SECONDS", "DJANGO_SECRET_KEY",
            "EMPATHY_METRICS_TOKEN", "EMPATHY_CHANNELS_URL"} <= found  # the scan itself works
    assert sorted(name for name in found if f"`{name}`" not in DOC) == []


def test_it_lists_every_prometheus_metric():
    names = set(METRIC.findall((ROOT / "coordination" / "metrics_exposition.py").read_text()))
    assert {"empathy_up", "empathy_keys", "empathy_probe_runs_total"} <= names
    assert sorted(name for name in names if f"`{name}`" not in DOC) == []
