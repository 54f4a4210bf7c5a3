"""docs/deployment.md promises to list every environment variable the code reads and every metric
``/metrics`` exposes: this keeps the promise true as settings and metrics are added."""

import re
from dataclasses import fields
from pathlib import Path

from empathy_os.defaults import Config

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "deployment.md").read_text()
#: Where the site and the library read the environment.
SOURCES = [ROOT / "empathy_site" / "settings.py", *sorted((ROOT / "empathy_os").rglob("*.py")),
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


# -- the deployment files of deploy/ ---------------------------------------------------------------------

DEPLOY = ROOT / "deploy"


def test_it_points_to_every_deployment_file():
    files = sorted(p.name for p in DEPLOY.iterdir() if p.is_file())
    assert {"compose.yaml", "redis.conf", "Dockerfile", "Procfile", "empathy-site@.service"} <= set(files)
    assert [name for name in files if f"deploy/{name}" not in DOC] == []


def test_its_compose_file_has_redis_postgres_two_sites_and_a_proxy():
    import yaml

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert "./redis.conf:/usr/local/etc/redis/redis.conf:ro" in services["redis"]["volumes"]
    assert services["redis"]["command"][:2] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert services["postgres"]["image"].startswith("postgres:")
    sites = [name for name, service in services.items() if "DATABASE_URL" in service.get("environment", {})
             and name != "migrate"]
    assert sites == ["site1", "site2"]
    for name in sites:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://") and "@redis:6379/" in env["REDIS_URL"]
        assert env["DJANGO_DEBUG"] == "0" and "EMPATHY_METRICS_TOKEN" in env
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert set(services["proxy"]["depends_on"]) == set(sites)
    upstream = (DEPLOY / "nginx.conf.template").read_text()
    assert all(f"server {name}:8000;" in upstream for name in sites)
    # every variable the compose file needs is in the example env file
    needed = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "compose.yaml").read_text()))
    given = set(re.findall(r"^([A-Z_]+)=", (DEPLOY / "example.env").read_text(), re.M))
    assert needed and needed <= given


def test_the_deployment_runs_the_default_server_of_manage_py_serve():
    from coordination.servers import APPLICATION, DEFAULT_SERVER

    assert re.search(rf"^## The ASGI server: {DEFAULT_SERVER} \(default\)", DOC, re.M)
    for path in ("empathy-site@.service", "Procfile", "Dockerfile"):
        text = (DEPLOY / path).read_text()
        assert DEFAULT_SERVER in text and APPLICATION in text, path
    unit = (DEPLOY / "empathy-site@.service").read_text()
    assert re.search(rf"^ExecStart=\S+/python -m {DEFAULT_SERVER} .*{re.escape(APPLICATION)}$", unit, re.M)
