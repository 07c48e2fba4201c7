"""A terminated database connection costs no request (issue 13, item 7).

gunicorn serves the real app in a child process, holding its connection between requests
(DATABASE_CONN_MAX_AGE); the test kills that connection on the server side with
pg_terminate_backend, as a database restart or failover would, and the next request must still
answer 200: Django checks a reused connection before the request uses it (CONN_HEALTH_CHECKS).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, token: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def server(tmp_path) -> Iterator[int]:
    """One sync gunicorn worker: every request reuses the same database connection."""
    port = _free_port()
    db = connection.settings_dict
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1", "SECRET_KEY": "x",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "DATABASE_CONN_MAX_AGE": "600"}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "spider_web.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--graceful-timeout", "5"],
            cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:  # an answer, not just the port: the worker has loaded the app
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                probe.request("GET", "/accounts/login/")
                probe.getresponse().read()
                probe.close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _terminate_other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_a_request_after_the_connection_was_killed_still_answers(users, server):
    token = Token.objects.create(user=users["admin"]).key
    status, _ = _get(server, "/api/projects/", token)
    assert status == 200
    for _ in range(3):  # each time: the server's pooled connection dies between requests
        assert _terminate_other_connections() >= 1
        time.sleep(0.2)  # the backend is gone before the next request arrives
        status, body = _get(server, "/api/projects/", token)
        assert status == 200, body[:500]
        assert isinstance(json.loads(body), dict | list)
