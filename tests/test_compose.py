"""The compose files start GPU workers the way long embedding steps need (no services run)."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def gpu_workers() -> dict[str, list[str]]:
    commands = {}
    for name in ("docker-compose.yml", "docker-compose.gpu-host.yml"):
        for service, spec in yaml.safe_load((ROOT / name).read_text())["services"].items():
            command = spec.get("command") or []
            if "-Q" in command and command[command.index("-Q") + 1] == "gpu":
                commands[f"{name}:{service}"] = command
    return commands


def test_gpu_workers_take_one_step_at_a_time_from_the_embedding_queue():
    workers = gpu_workers()
    assert {"docker-compose.yml:worker-gpu", "docker-compose.gpu-host.yml:worker-gpu-0"} <= set(
        workers)
    for where, command in workers.items():
        assert command[command.index("-O") + 1] == "fair", where
        assert command[command.index("--pool") + 1] == "solo", where  # may start decoders
    # every embedding step goes to the queue those workers consume; one message reserved per
    # worker, acknowledged when done, given back when the worker dies
    embedding = {"inference.tasks.embed_step", "inference.tasks.embed_chain"}
    assert {settings.CELERY_TASK_ROUTES[t]["queue"] for t in embedding} == {"gpu"}
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST


def test_every_host_mounts_the_same_media_volume():
    """Tiles are read by path: the GPU host's media volume is the main host's NFS export."""
    main = yaml.safe_load((ROOT / "docker-compose.multihost.yml").read_text())
    gpu = yaml.safe_load((ROOT / "docker-compose.gpu-host.yml").read_text())
    assert main["volumes"]["media"] == gpu["volumes"]["media"]
    assert gpu["volumes"]["media"]["driver_opts"]["type"] == "nfs"
    assert "media:/data/media" in gpu["services"]["worker-gpu-0"]["volumes"]
    env = gpu["services"]["worker-gpu-0"]["environment"]
    assert env["MEDIA_ROOT"] == "/data/media"
