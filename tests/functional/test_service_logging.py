"""The services' logs (oslo.log, stackcore.logs): a deployment split across processes, with a
database password and a RabbitMQ password of its own, runs servers and volumes for a project
with ``debug = true`` and a ``log_dir``; then

* each service wrote its log file, its driver calls among the lines, each line of a served
  request naming that request's id and project;
* no line of any log holds either password (grepped in the files, as an operator's log
  shipper would see them);
* ``use_json = true`` makes every line a JSON object carrying the request id and project.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from stackcore.project.context import RequestContext
from tests.conftest import backend_env, wait_until
from tests.functional.reliability.services import ServiceProcess, write_config

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]

PROJECT = RequestContext(user_id="logger", project_id="project-logs", roles=["member"])


def _sh(*cmd: str) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(cmd[:4])} ...: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture
def secret_backends() -> Iterator[dict[str, str]]:
    """A PostgreSQL role + database and a RabbitMQ user, each with a random password."""
    tag = uuid.uuid4().hex[:10]
    pg_pw, mq_pw = f"Pg{secrets.token_hex(12)}", f"Mq{secrets.token_hex(12)}"
    role = db = f"sclog_{tag}"
    base = sa.make_url(backend_env("STACKCORE_TEST_PG_URL", "postgres"))
    psql = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-p", str(base.port or 5432), "-d", "postgres", "-c"]
    _sh(*psql, f"CREATE ROLE {role} LOGIN PASSWORD '{pg_pw}'")
    _sh(*psql, f"CREATE DATABASE {db} OWNER {role}")
    mq_user = f"sclog-{tag}"
    _sh("rabbitmqctl", "-q", "add_user", mq_user, mq_pw)
    _sh("rabbitmqctl", "-q", "set_permissions", "-p", "/", mq_user, ".*", ".*", ".*")
    mq = sa.make_url(backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq").replace(
        "rabbit://", "postgresql://"))  # only to parse host and port
    try:
        yield {
            "db_url": base.set(username=role, password=pg_pw, database=db)
            .render_as_string(hide_password=False),
            "transport_url": f"rabbit://{mq_user}:{mq_pw}@{mq.host}:{mq.port}/",
            "secrets": [pg_pw, mq_pw],
        }
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", mq_user], capture_output=True,
                       check=False, timeout=120)
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                       capture_output=True, check=False, timeout=120)
        subprocess.run([*psql, f"DROP ROLE IF EXISTS {role}"], capture_output=True,
                       check=False, timeout=120)


def _deployment(tmp_path: Path, backends: dict[str, str], use_json: bool, servers: bool
                ) -> tuple[dict[str, ServiceProcess], stackcore.Cloud, Path]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    common: dict[str, Any] = {"transport_url": backends["transport_url"],
                              "report_interval": 1, "debug": "true",
                              "log_dir": str(log_dir), "use_json": str(use_json).lower()}
    procs = {}
    services: list[tuple[str, dict[str, Any]]] = [("scheduler", {}), ("volume", {})]
    if servers:
        services.append(("compute", {"compute": {"hosts": ["log-1"]}}))
    for name, extra in services:
        sections: dict[str, Any] = {
            "DEFAULT": {**common, "state_path": str(tmp_path / name)},
            "database": {"connection": backends["db_url"]}, **extra}
        procs[name] = ServiceProcess(name, write_config(tmp_path / f"{name}.conf", sections),
                                     tmp_path / "stderr.log")
    for proc in procs.values():
        proc.start()
    api = stackcore.Cloud(write_config(tmp_path / "api.conf", {
        "DEFAULT": {"transport_url": backends["transport_url"],
                    "state_path": str(tmp_path / "api")},
        "database": {"connection": backends["db_url"]}}), services=())
    return procs, api, log_dir


def _workload(api: stackcore.Cloud, image_file: str, servers: bool) -> tuple[str, str]:
    """A volume (and with ``servers`` a server) for PROJECT, under one request id; that id
    and the volume's."""
    wait_until(lambda: [p for p in api.volume.list_pools() if p.up], 60, "volume pool up")
    context = RequestContext(user_id=PROJECT.user_id, project_id=PROJECT.project_id,
                             roles=PROJECT.roles, request_id=f"req-{uuid.uuid4()}")
    view = api.as_project(context)
    if servers:
        api.compute.create_flavor("tiny", 1, 128, 1)
        api.compute.register_image("img", image_file, visibility="public")
        wait_until(lambda: [h for h in api.compute.list_hosts() if h.up], 60,
                   "compute host up")
        server = view.compute.create_server("logged", "tiny", "img", timeout=120)
        assert server.status == "ACTIVE", server
        view.compute.delete_server(server.id)
    volume = view.volume.create(1, timeout=120)
    assert volume.status == "available", volume
    view.volume.delete(volume.id)
    return context.request_id, volume.id


def _run(tmp_path: Path, backends: dict[str, str], image_file: str, use_json: bool,
         servers: bool) -> tuple[dict[str, str], str, str]:
    procs, api, log_dir = _deployment(tmp_path, backends, use_json, servers)
    try:
        request_id, volume_id = _workload(api, image_file, servers)
    finally:
        api.close()
        for proc in procs.values():
            proc.stop()
    logs = {path.name: path.read_text(errors="replace") for path in log_dir.iterdir()}
    return logs, request_id, volume_id


def test_service_logs_name_the_request_and_never_a_password(
        tmp_path: Path, secret_backends: dict[str, Any], image_file: str) -> None:
    logs, request_id, volume_id = _run(tmp_path, secret_backends, image_file, use_json=False,
                                           servers=True)
    assert sorted(logs) == ["stackcore-compute.log", "stackcore-scheduler.log",
                            "stackcore-volume.log"], sorted(logs)
    text = "\n".join(logs.values())
    for secret in secret_backends["secrets"]:
        leaks = [line for line in text.splitlines() if secret in line]
        assert leaks == [], f"a password is in the logs: {leaks[:3]}"
    assert " DEBUG " in text, f"debug = true logged no DEBUG line: {text[:2000]}"
    served = [line for line in text.splitlines() if request_id in line]
    assert served, f"no line names the request {request_id}: {text[-3000:]}"
    without_project = [line for line in served if PROJECT.project_id not in line]
    assert without_project == [], f"lines of {request_id} without its project: " \
                                  f"{without_project[:3]}"
    driver_lines = [line for line in served if "driver" in line and " done in " in line]
    assert driver_lines, f"no driver call logged under {request_id}: {served[:10]}"
    volume_lines = [line for line in text.splitlines()
                    if volume_id in line and "create_volume" in line]
    assert volume_lines, f"the volume {volume_id}'s creation is not logged"


def test_json_logs_carry_the_request_id_and_project(
        tmp_path: Path, secret_backends: dict[str, Any], image_file: str) -> None:
    logs, request_id, _ = _run(tmp_path, secret_backends, image_file, use_json=True, servers=False)
    records = []
    for name, text in logs.items():
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"{name}:{number} is not JSON: {line[:300]!r}")
    ours = [r for r in records if (r.get("context") or {}).get("request_id") == request_id]
    assert ours, f"no JSON record carries request_id {request_id} " \
                 f"(of {len(records)} records; a sample: {records[:2]})"
    projects = {(r.get("context") or {}).get("project_id") for r in ours}
    assert projects == {PROJECT.project_id}, projects
    text = "\n".join(logs.values())
    for secret in secret_backends["secrets"]:
        assert not re.search(re.escape(secret), text), "a password is in the JSON logs"
