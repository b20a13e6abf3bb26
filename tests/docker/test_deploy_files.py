"""Static checks of the deployment files under docker/ (nothing is built or started).

Compose, the KubeRay manifests and the Dockerfiles are parsed and checked for: images pinned to
exact tags, health checks, only the intended ports published, Ray token auth on every node, the
MLflow server's security and artifact options (parsed with MLflow's own CLI), GPU reservations,
one shared storage path, the example sweep config, every morphsweep command they and the README
show (parsed with the real CLI parser) and no committed secrets.
"""

from __future__ import annotations

import configparser
import fnmatch
import importlib.metadata
import os
import re
import shlex
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
KUBERAY = DOCKER / "kuberay"
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_AUTH = DOCKER / "compose.auth.yaml"
SWEEP = DOCKER / "sweep.cluster.yaml"
README = DOCKER / "README.md"
MANIFESTS = [KUBERAY / n for n in ("raycluster.yaml", "rayjob.yaml", "mlflow.yaml", "storage.yaml")]
RAY_MANIFESTS = [KUBERAY / "raycluster.yaml", KUBERAY / "rayjob.yaml"]

EXPECTED_SERVICES = {"postgres", "minio", "minio-init", "mlflow", "ray-head", "ray-worker"}
LONG_RUNNING = EXPECTED_SERVICES - {"minio-init"}
RAY_SERVICES = ("ray-head", "ray-worker")
PUBLISHED = {"mlflow": {5000}, "ray-head": {8265}}
SHARED_MOUNT = "/shared"
PVC = "morphsweep-shared"
RAY_SECRET, RAY_SECRET_KEY = "ray-auth", "auth_token"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE_KEY", re.IGNORECASE)


# ----- helpers -----------------------------------------------------------------------------------
def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def with_defaults(text: str) -> str:
    """Compose interpolation as if only defaults were given: ${V:-d} -> d; required vars stay."""

    def sub(m: re.Match[str]) -> str:
        return m.group("arg") if m.group("op") in ("-", ":-") else m.group(0)

    return VAR.sub(sub, text)


def walk(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair in nested dicts/lists; list items carry their list's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, f"{path.name}: dangling line continuation"
    return out


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    assert ":" in last, f"image {image!r} has no tag"
    return last.split(":", 1)[1]


def assert_pinned(image: str, where: str) -> None:
    assert "$" not in image, f"{where}: image {image!r} is not a fixed string"
    name, _, digest = image.partition("@")
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{where}: bad digest in {image!r}"
        return
    tag = image_tag(name)
    assert tag != "latest", f"{where}: {image!r} uses latest"
    # an exact version: major.minor(.patch...) or a MinIO RELEASE timestamp, never a moving alias
    assert re.search(r"(^|[^0-9])\d+\.\d+", tag) or re.fullmatch(
        r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", tag
    ), f"{where}: {image!r} is not pinned to an exact version tag"


def compose() -> dict[str, Any]:
    return load(COMPOSE)


def services() -> dict[str, Any]:
    return compose()["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def required_vars(*paths: Path) -> set[str]:
    names = set()
    for path in paths:
        for m in VAR.finditer(path.read_text()):
            if m.group("op") in ("?", ":?"):
                names.add(m.group("name"))
    return names


def containers(manifest: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, container) for every container of every pod template in a manifest."""
    for doc in load_all(manifest):
        for key, value in walk(doc):
            if key == "containers":
                for c in value:
                    yield f"{manifest.name}:{doc['kind']}:{c['name']}", c


def ray_groups(manifest: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """('head'|'worker:<group>', group spec) of the RayCluster spec in raycluster/rayjob."""
    (doc,) = load_all(manifest)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    yield "head", spec["headGroupSpec"]
    for group in spec["workerGroupSpecs"]:
        yield f"worker:{group['groupName']}", group


def cluster_spec(manifest: Path) -> dict[str, Any]:
    (doc,) = load_all(manifest)
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def ray_start():
    from ray.scripts.scripts import start

    return start


def mlflow_server():
    from mlflow.cli import server

    return server


def parse_click(command: Any, args: list[str]) -> dict[str, Any]:
    import click

    try:
        return command.make_context(command.name, list(args)).params
    except click.UsageError as exc:
        pytest.fail(f"{command.name} {' '.join(args)}: {exc}")


def sweep_config():
    from sweep.config import load_sweep_config

    return load_sweep_config(SWEEP)


# ----- images -------------------------------------------------------------------------------------
def all_images() -> list[tuple[str, str]]:
    found = []
    for name, svc in services().items():
        assert "image" in svc, f"compose service {name} names no image"
        found.append((f"compose:{name}", with_defaults(svc["image"])))
    for df in ("Dockerfile.trial", "Dockerfile.mlflow"):
        for instruction, args in dockerfile(DOCKER / df):
            if instruction == "FROM":
                found.append((df, args.split()[0]))
    for manifest in MANIFESTS:
        for where, c in containers(manifest):
            found.append((where, c["image"]))
    return found


def test_every_image_is_pinned_to_an_exact_tag():
    images = all_images()
    assert len(images) >= 10
    for where, image in images:
        assert_pinned(image, where)


def test_base_images_match_the_project_pins():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (trial_from,) = [a for i, a in dockerfile(DOCKER / "Dockerfile.trial") if i == "FROM"]
    assert trial_from.startswith("rayproject/ray:")
    ray_tag = image_tag(trial_from)
    ray_version = importlib.metadata.version("ray")
    assert ray_tag.startswith(f"{ray_version}-py311"), (ray_tag, ray_version)
    assert ray_tag.endswith("-gpu"), "the trial image runs on GPU workers"
    assert any(d.startswith("ray[") and ">=2.60,<2.61" in d for d in pyproject["dependencies"])
    assert pyproject["requires-python"] == ">=3.11"

    (mlflow_from,) = [a for i, a in dockerfile(DOCKER / "Dockerfile.mlflow") if i == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", mlflow_from), mlflow_from
    installs = " ".join(a for i, a in dockerfile(DOCKER / "Dockerfile.mlflow") if i == "RUN")
    mlflow_version = importlib.metadata.version("mlflow")
    assert f'"mlflow[auth]=={mlflow_version}"' in installs
    # the project pins the minor release the image carries (a fresh install gets that one)
    major_minor = ".".join(mlflow_version.split(".")[:2])
    (mlflow_pin,) = [d for d in pyproject["dependencies"] if d.startswith("mlflow")]
    low, high = re.fullmatch(r"mlflow>=(\d+\.\d+),<(\d+\.\d+)", mlflow_pin).groups()
    assert low == major_minor, (mlflow_pin, mlflow_version)
    assert high == f"{major_minor.split('.')[0]}.{int(major_minor.split('.')[1]) + 1}", mlflow_pin
    for package in ("psycopg2-binary", "boto3"):
        assert re.search(rf'"{package}==\d+\.\d+\.\d+"', installs), package

    # the images compose builds carry the versions they contain
    svc = services()
    assert svc["ray-head"]["image"] == svc["ray-worker"]["image"]
    assert svc["ray-head"]["image"] == f"morphsweep-trial:{pyproject['version']}"
    assert svc["mlflow"]["image"] == f"morphsweep-mlflow:{mlflow_version}"
    for manifest in MANIFESTS:
        for where, c in containers(manifest):
            if "trial" in c["image"]:
                assert c["image"].endswith(f"/morphsweep-trial:{pyproject['version']}"), where
            else:
                assert c["image"].endswith(f"/morphsweep-mlflow:{mlflow_version}"), where
    for manifest in RAY_MANIFESTS:
        assert cluster_spec(manifest)["rayVersion"] == ray_version


# ----- Dockerfiles ----------------------------------------------------------------------------------
def test_trial_dockerfile_installs_the_project_as_non_root_with_a_healthcheck():
    steps = dockerfile(DOCKER / "Dockerfile.trial")
    copies = [a for i, a in steps if i == "COPY"]
    copied = {src for a in copies for src in shlex.split(a)[:-1] if not src.startswith("--")}
    assert copied == {"pyproject.toml", "README.md", "trainers/", "sweep/", "dashboards/"}
    assert all("--chown=ray:users" in a for a in copies)
    runs = " ".join(a for i, a in steps if i == "RUN")
    assert "pip install --no-cache-dir ." in runs
    assert "mkdir -p /shared/morphsweep" in runs and "chown -R ray:users /shared" in runs
    users = [a for i, a in steps if i == "USER"]
    assert users[-1] == "ray", "the image must end as the base image's non-root user"
    env = " ".join(a for i, a in steps if i == "ENV")
    assert "RAY_AUTH_MODE=token" in env
    (health,) = [a for i, a in steps if i == "HEALTHCHECK"]
    assert "CMD" in health and "/api/local_raylet_healthz" in health

    # the build context holds exactly what the Dockerfile copies (no .venv, no docker/.env)
    ignore = (DOCKER / "Dockerfile.trial.dockerignore").read_text().split("\n")
    rules = [r.strip() for r in ignore if r.strip() and not r.startswith("#")]
    assert rules[0] == "*"
    assert {r[1:] for r in rules if r.startswith("!")} == copied


def test_mlflow_dockerfile_runs_unprivileged_with_a_health_check():
    steps = dockerfile(DOCKER / "Dockerfile.mlflow")
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    (health,) = [a for i, a in steps if i == "HEALTHCHECK"]
    assert "http://127.0.0.1:5000/health" in health
    assert not [i for i, _ in steps if i in ("COPY", "ADD")]
    ignore = [r for r in (DOCKER / "Dockerfile.mlflow.dockerignore").read_text().splitlines()]
    assert [r for r in ignore if r and not r.startswith("#")] == ["*"]


# ----- compose: services, health, ports, networks ---------------------------------------------------
def test_compose_services_and_healthchecks():
    svc = services()
    assert set(svc) == EXPECTED_SERVICES
    for name in LONG_RUNNING:
        check = svc[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert svc[name].get("restart") == "unless-stopped", name
    assert "pg_isready" in " ".join(svc["postgres"]["healthcheck"]["test"])
    assert svc["ray-head"]["healthcheck"]["test"][-1].count("/api/gcs_healthz") == 1
    assert svc["minio-init"]["restart"] == "no"
    # start order follows health, not just container start
    assert svc["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert svc["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert svc["ray-head"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert svc["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    # both builds point at files that exist
    for name in ("mlflow", "ray-head", "ray-worker"):
        build = svc[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file(), name


def published_ports(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host ip, container port) for each published port (short or long syntax)."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((str(entry.get("host_ip", "0.0.0.0")), int(entry["target"])))
            continue
        parts = with_defaults(str(entry)).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        out.append((host_ip, int(parts[-1])))
    return out


def test_only_mlflow_5000_and_the_ray_dashboard_8265_are_published():
    svc = services()
    ports = {name: {p for _, p in published_ports(s)} for name, s in svc.items()}
    assert {n: p for n, p in ports.items() if p} == PUBLISHED
    for name in ("postgres", "minio", "minio-init", "ray-worker"):
        assert not svc[name].get("ports"), name
    assert 6379 not in ports["ray-head"], "workers join the GCS on the compose network"
    for name, s in svc.items():
        assert s.get("network_mode") != "host", name
        for host_ip, _ in published_ports(s):
            assert host_ip == "127.0.0.1", f"{name} is published beyond loopback by default"


def test_storage_is_on_a_network_the_ray_nodes_do_not_join():
    svc = services()
    nets = {name: set(s["networks"]) for name, s in svc.items()}
    assert nets["postgres"] == nets["minio"] == nets["minio-init"] == {"storage"}
    assert nets["ray-head"] == nets["ray-worker"] == {"ray"}
    assert nets["mlflow"] == {"storage", "ray"}
    assert set(compose()["networks"]) == {"storage", "ray"}


# ----- Ray: token auth, commands, GPUs, shared storage ---------------------------------------------
def test_ray_nodes_use_token_auth_from_the_environment():
    svc = services()
    for name in RAY_SERVICES:
        env = env_of(svc[name])
        assert env["RAY_AUTH_MODE"] == "token", name
        assert re.fullmatch(r"\$\{RAY_AUTH_TOKEN:\?.+\}", env["RAY_AUTH_TOKEN"]), name


def test_ray_start_commands_parse_with_rays_cli():
    start = ray_start()
    svc = services()
    head_cmd, worker_cmd = svc["ray-head"]["command"], svc["ray-worker"]["command"]
    assert head_cmd[:2] == worker_cmd[:2] == ["ray", "start"]
    head = parse_click(start, head_cmd[2:])
    assert head["head"] and head["block"]
    assert head["port"] == 6379 and head["dashboard_host"] == "0.0.0.0"
    assert head["dashboard_port"] == 8265 and 8265 in PUBLISHED["ray-head"]
    worker = parse_click(start, worker_cmd[2:])
    assert not worker["head"] and worker["block"]
    assert worker["address"] == f"ray-head:{head['port']}"
    # KubeRay passes rayStartParams to `ray start` as --key=value
    for manifest in RAY_MANIFESTS:
        for group, spec in ray_groups(manifest):
            params = spec["rayStartParams"]
            assert all(isinstance(v, str) for v in params.values()), (manifest.name, group)
            parsed = parse_click(start, [f"--{k}={v}" for k, v in params.items()])
            if group == "head":
                assert parsed["dashboard_host"] == "0.0.0.0"


def test_workers_reserve_gpus():
    worker = services()["ray-worker"]
    deploy = worker["deploy"]
    assert "replicas" in deploy
    devices = deploy["resources"]["reservations"]["devices"]
    assert devices
    for device in devices:
        assert device["driver"] == "nvidia"
        assert "gpu" in device["capabilities"]
        assert "count" in device or "device_ids" in device
        if "count" in device:
            count = with_defaults(str(device["count"]))
            assert count == "all" or int(count) >= 1
    assert "deploy" not in services()["ray-head"], "the head takes no GPU"
    # KubeRay: GPU limits on the worker groups, none on the head
    for manifest in RAY_MANIFESTS:
        for group, spec in ray_groups(manifest):
            (c,) = spec["template"]["spec"]["containers"]
            limits = c["resources"]["limits"]
            if group == "head":
                assert "nvidia.com/gpu" not in limits
            else:
                assert int(limits["nvidia.com/gpu"]) >= 1, (manifest.name, group)
                assert c["resources"]["requests"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]


def test_shared_volume_on_head_and_workers_is_the_sweeps_storage_path():
    config = sweep_config()
    storage = PurePosixPath(config.storage_path)
    assert storage.is_relative_to(SHARED_MOUNT), config.storage_path
    comp = compose()
    for name in RAY_SERVICES:
        mounts = [v.split(":") for v in comp["services"][name]["volumes"]]
        shared = [m for m in mounts if m[1] == SHARED_MOUNT]
        assert len(shared) == 1, name
        source = shared[0][0]
        assert source in comp["volumes"], f"{name}: {source} is not a named volume"
    sources = {
        v.split(":")[0]
        for name in RAY_SERVICES
        for v in comp["services"][name]["volumes"]
        if v.split(":")[1] == SHARED_MOUNT
    }
    assert len(sources) == 1, "head and workers must mount the same volume"
    # KubeRay: the same PVC at the same path on the head and every worker group
    (pvc,) = load_all(KUBERAY / "storage.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == PVC
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for manifest in RAY_MANIFESTS:
        for group, spec in ray_groups(manifest):
            pod = spec["template"]["spec"]
            (c,) = pod["containers"]
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == SHARED_MOUNT)
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            assert volume["persistentVolumeClaim"]["claimName"] == PVC, (manifest.name, group)
            assert pod["securityContext"]["fsGroup"] == 100, "the ray user's group writes it"


def test_kuberay_manifests_take_the_ray_token_from_a_secret():
    for manifest in RAY_MANIFESTS:
        spec = cluster_spec(manifest)
        assert spec["authOptions"] == {"mode": "token", "secretName": RAY_SECRET}
        found = list(containers(manifest))
        assert len(found) >= 2
        for where, c in found:
            env = {e["name"]: e for e in c["env"]}
            assert env["RAY_AUTH_MODE"].get("value") == "token", where
            token = env["RAY_AUTH_TOKEN"]
            assert "value" not in token, where
            assert token["valueFrom"]["secretKeyRef"] == {"name": RAY_SECRET, "key": RAY_SECRET_KEY}
    (job,) = load_all(KUBERAY / "rayjob.yaml")
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"], "submitter needs the token"
    readme = README.read_text()
    assert (
        f"kubectl create secret generic {RAY_SECRET} --from-literal={RAY_SECRET_KEY}=$(" in readme
    )


def test_rayjob_runs_the_sweep_from_the_configmap():
    from sweep.cli import parse_args

    (job,) = load_all(KUBERAY / "rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    (cluster,) = load_all(KUBERAY / "raycluster.yaml")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    entry = shlex.split(job["spec"]["entrypoint"])
    assert entry[:3] == ["python", "-m", "sweep.cli"]
    args = parse_args(entry[3:])
    assert (args.command, args.address) == ("run", "auto")
    config_path = PurePosixPath(args.config)
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (c,) = head["containers"]
    mount = next(m for m in c["volumeMounts"] if config_path.is_relative_to(m["mountPath"]))
    volume = next(v for v in head["volumes"] if v["name"] == mount["name"])
    cm = volume["configMap"]
    key = str(config_path.relative_to(mount["mountPath"]))
    assert not cm.get("optional")
    assert any(i["key"] == key and i["path"] == key for i in cm["items"])
    assert (
        f"kubectl create configmap {cm['name']} --from-file={key}=docker/sweep.cluster.yaml"
        in README.read_text()
    )


# ----- MLflow --------------------------------------------------------------------------------------
def mlflow_args(command: list[str]) -> list[str]:
    assert command[:2] == ["mlflow", "server"], command
    return [with_defaults(a) for a in command[2:]]


def check_mlflow_params(params: dict[str, Any], hosts_that_must_pass: list[str]) -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    assert params["serve_artifacts"] is True, "artifacts must be proxied"
    assert params["artifacts_destination"].startswith("s3://")
    assert not params["artifacts_only"]
    assert params["host"] == "0.0.0.0" and params["port"] == 5000
    assert params["allowed_hosts"] and params["allowed_hosts"] != "*"
    allowed = [h.strip() for h in params["allowed_hosts"].split(",")]
    assert "*" not in allowed
    for host in hosts_that_must_pass:
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "evil.example.com:5000")
    assert params["cors_allowed_origins"] and "*" not in params["cors_allowed_origins"]
    assert not params["disable_security_middleware"]


def test_compose_mlflow_server_options_parse_with_mlflows_cli():
    server = mlflow_server()
    svc = services()["mlflow"]
    params = parse_click(server, mlflow_args(svc["command"]))
    tracking = urlparse(sweep_config().tracking_uri)
    # trials reach MLflow as the sweep config says; desks through the published port
    assert tracking.hostname == "mlflow" and tracking.port == 5000
    check_mlflow_params(params, [tracking.netloc, "localhost:5000", "127.0.0.1:5000"])
    uri = urlparse(params["backend_store_uri"])
    assert uri.scheme == "postgresql" and uri.password is None, "password comes from PGPASSWORD"
    assert uri.hostname == "postgres" and uri.port == 5432
    env = env_of(svc)
    for key in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert REQUIRED_REF.fullmatch(env[key]), key
    assert urlparse(env["MLFLOW_S3_ENDPOINT_URL"]).hostname == "minio"
    # minio-init creates the bucket MLflow writes to
    bucket = urlparse(params["artifacts_destination"]).netloc
    init = " ".join(services()["minio-init"]["command"])
    assert f"mc mb --ignore-existing local/{bucket}" in init
    assert "mc admin user add local" in init, "MLflow gets its own MinIO user"


def test_basic_auth_overlay():
    server = mlflow_server()
    base = services()["mlflow"]["command"]
    overlay = load(COMPOSE_AUTH)["services"]
    assert overlay["mlflow"]["command"] == base + ["--app-name", "basic-auth"]
    params = parse_click(server, mlflow_args(overlay["mlflow"]["command"]))
    assert params["app_name"] == "basic-auth"
    check_mlflow_params(params, ["mlflow:5000", "localhost:5000"])
    env = env_of(overlay["mlflow"])
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert REQUIRED_REF.fullmatch(env[key]), key
    mounts = {v.split(":")[1]: v.split(":")[0] for v in overlay["mlflow"]["volumes"]}
    ini_source = mounts[env["MLFLOW_AUTH_CONFIG_PATH"]]
    ini = configparser.ConfigParser()
    assert ini.read(DOCKER / ini_source)
    assert "admin_password" not in ini["mlflow"], "the admin password comes from the env"
    database_uri = ini["mlflow"]["database_uri"]
    assert database_uri.startswith("sqlite:////"), "an absolute path on the auth volume"
    db = PurePosixPath(database_uri.removeprefix("sqlite:///"))
    assert any(db.is_relative_to(target) for target in mounts if not target.endswith(".ini"))
    assert "mlflow-auth" in load(COMPOSE_AUTH)["volumes"]
    for name in RAY_SERVICES:
        ray_env = env_of(overlay[name])
        assert REQUIRED_REF.fullmatch(ray_env["MLFLOW_TRACKING_PASSWORD"]), name
        assert ray_env["MLFLOW_TRACKING_USERNAME"]


def test_kubernetes_mlflow_deployment():
    server = mlflow_server()
    docs = load_all(KUBERAY / "mlflow.yaml")
    assert {d["kind"] for d in docs} == {"Deployment", "Service"}
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    params = parse_click(server, mlflow_args(c["command"] + c["args"]))
    tracking = urlparse(sweep_config().tracking_uri)
    ns_host = f"{service['metadata']['name']}.morphsweep.svc.cluster.local:{tracking.port}"
    check_mlflow_params(params, [tracking.netloc, ns_host, "localhost:5000"])
    assert service["metadata"]["name"] == tracking.hostname
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [tracking.port]
    env = {e["name"]: e for e in c["env"]}
    for name in ("MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-server", name
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


# ----- the example sweep config ----------------------------------------------------------------------
def test_cluster_sweep_config_loads():
    config = sweep_config()
    assert config.tracking_uri == "http://mlflow:5000"
    assert config.storage_path == "/shared/morphsweep"
    assert 0 < config.gpus_per_trial < 1, "several trials share one GPU"
    assert config.address is None, "the address comes from submit / --address auto"
    assert urlparse(config.tracking_uri).hostname in services(), "a compose service name"


# ----- every morphsweep command shown ------------------------------------------------------------------
SUBST = re.compile(r"\$\([^()]*\)")
COMMAND_KEYS = {"command", "entrypoint", "args", "test"}


def command_lines(text: str) -> Iterator[str]:
    """Shell commands: each segment of a line, split at &&, ||, ;, | and &."""
    text = text.replace("\\\n", " ")
    for line in text.splitlines():
        line = SUBST.sub("SUBST", line.strip().lstrip("$ ").strip())
        for part in re.split(r"&&|\|\||;|\||&", line):
            if part.strip():
                yield part.strip()


def cli_argv(command: str) -> list[str] | None:
    """The argv after `morphsweep` / `python -m sweep.cli`, or None for other commands."""
    tokens = shlex.split(command)
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        tokens = tokens[1:]
    if tokens[:1] == ["morphsweep"]:
        return tokens[1:]
    if tokens[:3] == ["python", "-m", "sweep.cli"]:
        return tokens[3:]
    return None


def shown_commands() -> list[tuple[str, list[str]]]:
    sources: list[tuple[str, str]] = []
    readme = README.read_text()
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme, flags=re.S):
        sources += [("README.md", c) for c in command_lines(block)]
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    sources += [("README.md", span) for span in re.findall(r"`([^`\n]+)`", prose)]
    for path in [COMPOSE, COMPOSE_AUTH, *MANIFESTS]:
        for doc in load_all(path):
            for key, value in walk(doc):
                if key not in COMMAND_KEYS or not isinstance(value, str | list):
                    continue  # (compose build args are a mapping, not a command)
                texts = [shlex.join(value), *value] if isinstance(value, list) else [value]
                sources += [(path.name, c) for text in texts for c in command_lines(text)]
    for path in [*DOCKER.glob("*.yaml"), *KUBERAY.glob("*.yaml"), *DOCKER.glob("Dockerfile.*")]:
        for line in path.read_text().splitlines():
            m = re.match(r"\s*#\s+((?:morphsweep|python -m sweep\.cli)\s.*)$", line)
            if m:
                sources.append((path.name, m.group(1)))
    out = []
    for where, command in sources:
        try:
            argv = cli_argv(command)
        except ValueError:  # prose in backticks that is not shell
            continue
        if argv is not None:
            out.append((f"{where}: {command}", argv))
    return out


def test_every_shown_morphsweep_command_parses_with_the_real_cli():
    import click

    from sweep.cli import parse_args

    config = sweep_config()
    found = shown_commands()
    seen = set()
    for where, argv in found:
        assert not any("<" in a or ">" in a for a in argv), f"placeholder left in {where}"
        try:
            args = parse_args(argv)
        except click.UsageError as exc:
            pytest.fail(f"{where} does not parse ({exc.format_message()})")
        seen.add(args.command)
        if args.command in ("pick", "pareto"):
            assert args.sweep == config.name, where
            port = urlparse(args.tracking_uri).port
            assert port in PUBLISHED["mlflow"], where
        if args.command in ("submit", "status", "logs"):
            assert urlparse(args.address).port in PUBLISHED["ray-head"], where
        if args.command in ("submit", "run") and not args.config.startswith("/config/"):
            assert (ROOT / args.config).is_file(), where
    assert {"submit", "status", "logs", "pareto", "pick", "apply", "run"} <= seen
    assert len(found) >= 10


# ----- secrets ---------------------------------------------------------------------------------------
def committed_files() -> list[Path]:
    """Files under docker/ that are meant to be committed (docker/.env is local only)."""
    return [
        p
        for p in DOCKER.rglob("*")
        if p.is_file() and p.name != ".env" and not p.name.startswith(".env.")
    ] + [DOCKER / ".env.example"]


def test_compose_secrets_are_only_variable_references():
    for path in (COMPOSE, COMPOSE_AUTH):
        for name, svc in load(path)["services"].items():
            for key, value in env_of(svc).items():
                if SECRET_NAME.search(key):
                    assert REQUIRED_REF.fullmatch(value), f"{path.name}:{name}:{key}={value!r}"


def test_manifests_take_secrets_from_secret_refs_and_commit_no_secret():
    checked = 0
    for manifest in MANIFESTS:
        for doc in load_all(manifest):
            assert doc["kind"] != "Secret", f"{manifest.name} commits a Secret"
        for where, c in containers(manifest):
            for e in c.get("env", []):
                if SECRET_NAME.search(e["name"]):
                    assert "value" not in e, f"{where}: {e['name']} has a literal value"
                    assert "secretKeyRef" in e["valueFrom"], f"{where}: {e['name']}"
                    checked += 1
    assert checked >= 8


def test_env_example_has_no_values_for_secrets():
    keys = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key] = value
    for key, value in keys.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example gives {key} a value"
    assert required_vars(COMPOSE, COMPOSE_AUTH) <= set(keys)


def test_no_secret_looking_literals_are_committed():
    hexlike = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32,}(?![0-9a-fA-F])")
    b64like = re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*\d)[A-Za-z0-9+/]{40,}={0,2}")
    assignment = re.compile(
        r"(?i)\b[\w.-]*(password|secret|token)[\w.-]*[ \t]*[:=][ \t]*['\"]?([^\s'\"$`]{6,})"
    )
    allowed_values = {"auth_token", "basic-auth", "secretKeyRef", "required"}
    files = committed_files()
    assert len(files) >= 12
    for path in files:
        text = path.read_text()
        assert not hexlike.search(text), f"{path.name}: hex secret-like literal"
        assert not b64like.search(text), f"{path.name}: base64 secret-like literal"
        for m in assignment.finditer(text):
            value = m.group(2)
            if value in allowed_values or value.startswith(("${", "$(", "secretKeyRef")):
                continue
            if re.fullmatch(r"[A-Z_]+|[a-z-]+|[a-z_]+", value):  # a name, not a secret
                continue
            pytest.fail(f"{path.name}: {m.group(0)!r} looks like a committed secret")


def test_docker_env_is_gitignored():
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, p.lstrip("/")) for p in patterns if not p.startswith("!"))

    assert "docker/.env" in patterns
    assert ignored("docker/.env")
    assert not ignored("docker/.env.example")


def test_make_env_writes_every_required_secret(tmp_path: Path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = tmp_path / "docker" / "make-env.sh"
    script.parent.mkdir()
    shutil.copy(DOCKER / "make-env.sh", script)
    assert os.access(DOCKER / "make-env.sh", os.X_OK), "make-env.sh must be executable"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([bash, str(script), *args], capture_output=True, text=True)

    def read() -> dict[str, str]:
        lines = (tmp_path / "docker" / ".env").read_text().splitlines()
        return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))

    assert run().returncode == 0
    env_file = tmp_path / "docker" / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    first = read()
    for name in required_vars(COMPOSE, COMPOSE_AUTH):
        assert first.get(name), f"make-env.sh does not set {name}"
    assert re.fullmatch(r"[0-9a-f]{64}", first["RAY_AUTH_TOKEN"])
    for name in ("MINIO_ROOT_PASSWORD", "MLFLOW_S3_SECRET_KEY"):  # MinIO: 8-40 characters
        assert 8 <= len(first[name]) <= 40, name
    refused = run()
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert run("--force").returncode == 0
    second = read()
    for name in first:
        if SECRET_NAME.search(name):
            assert first[name] != second[name], f"{name} is not random"
    assert sorted(p.name for p in script.parent.iterdir()) == [".env", "make-env.sh"]
