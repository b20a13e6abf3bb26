"""The commands that work on a Ray cluster's job server: submit a sweep, its status, its logs."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from .config import load_sweep_config
from .options import UserError
from .preflight import ClusterUnavailable


def job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ray raises ConnectionError or RuntimeError depending on the failure
        raise ClusterUnavailable(
            f"cannot reach the Ray job server at {address} ({exc}); give the head's dashboard "
            f"address, e.g. --address http://HEAD:8265 (and RAY_AUTH_TOKEN if the cluster uses "
            f"token authentication)"
        ) from exc


def stage(config_path: str) -> Path:
    """A directory holding the project's packages and the config, shipped as the job's working_dir."""
    root = Path(__file__).resolve().parents[1]
    staged = Path(tempfile.mkdtemp(prefix="morphsweep-job-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("sweep", "trainers", "dashboards"):
        shutil.copytree(root / package, staged / package, ignore=ignore)
    shutil.copy(config_path, staged / "sweep.yaml")
    return staged


address_option = click.option(
    "--address", required=True, help="the head's dashboard, e.g. http://HEAD:8265"
)


@click.command(help="Submit a sweep to a Ray cluster (job submission).")
@click.argument("config")
@address_option
def submit(config: str, address: str) -> None:
    sweep = load_sweep_config(config)
    missing = [key for key in ("tracking_uri", "storage_path") if not getattr(sweep, key)]
    if missing:
        raise UserError(
            f"set {' and '.join(missing)} in {config}: on a cluster the results must go to an "
            f"MLflow server the cluster reaches (tracking_uri) and to a storage path every node "
            f"sees (storage_path)"
        )
    client = job_client(address)
    storage = shlex.quote(sweep.resolved_storage_path)
    job_id = client.submit_job(
        # the driver runs from the storage path, which outlives the job's working_dir (Ray may
        # delete that when the last trial using it ends, under the driver's feet)
        entrypoint=(
            'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MORPHSWEEP_CONFIG="$PWD/sweep.yaml"'
            f" && mkdir -p {storage} && cd {storage}"
            ' && python -m sweep.cli run "$MORPHSWEEP_CONFIG" --address auto --verbose 1'
        ),
        runtime_env={"working_dir": str(stage(config))},
        metadata={"morphsweep_sweep": sweep.name},
    )
    print(f"submitted sweep {sweep.name!r} as job {job_id}")
    print(f"watch:  morphsweep status {job_id} --address {address}")
    print(f"        morphsweep logs {job_id} --address {address} --follow")
    print(f"        Ray dashboard: {address}")


@click.command(help="The status of a submitted sweep.")
@click.argument("job_id")
@address_option
def status(job_id: str, address: str) -> None:
    info = job_client(address).get_job_info(job_id)
    print(f"{job_id}: {info.status}" + (f" ({info.message})" if info.message else ""))


@click.command(help="The logs of a submitted sweep.")
@click.argument("job_id")
@address_option
@click.option("--follow", is_flag=True, help="keep printing until the job ends")
def logs(job_id: str, address: str, follow: bool) -> None:
    import asyncio

    client = job_client(address)
    if not follow:
        print(client.get_job_logs(job_id), end="")
        return

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
