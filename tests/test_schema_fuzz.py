"""Schemathesis over every operation of the OpenAPI schema, against the live test server with
a logged-in token (issue 13, items 1 and 2): no server error, and every answer (status code
and body) is one the schema declares.

Path parameters name real objects of an imported project (random slugs and ids would meet
only 404s); bodies and query strings are generated from the schema, valid ones and invalid
ones. Bounded: a fixed number of examples per operation, no shrinking, seeded.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from annotations.models import Patch, Slide
from inference.models import EmbeddingSpace, InferenceJob, ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 10  # per operation and generation mode
# Revoking the token would end the run's authentication midway; it has its own test.
SKIP = {("POST", "/api/auth/token/revoke/")}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def objects(imported, users):
    """Real ids for the path parameters: a patch, a slide, a model version, jobs."""
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=imported, name="v", space=space, head_file="h", head_sha256="0" * 64,
        class_names=list(imported.classes.values_list("name", flat=True)),
        source="registered")
    train = InferenceJob.objects.create(project=imported, kind="train", status="failed",
                                        error="x")
    return {"project_slug": imported.slug, "slug": imported.slug, "patch_id": patch.pk,
            "pk": patch.pk, "id": patch.pk, "slide": Slide.objects.filter(
                project=imported).first().pk, "version_id": version.pk, "job": train.pk,
            "tile_id": patch.centre_tile_id if hasattr(patch, "centre_tile_id") else 1,
            "queue": "unreviewed"}


def path_values(op, objects: dict) -> dict:
    """Real values for the operation's path parameters, by name (and, for ``pk`` and ``id``,
    by the collection the path names)."""
    values = {}
    for param in op.path_parameters:
        name = param.name
        value = objects.get(name)
        if name in ("pk", "id"):
            for key, obj in (("/slides/", "slide"), ("/models/", "version_id"),
                             ("-jobs/", "job")):
                if key in op.path:
                    value = objects[obj]
        if value is not None:
            values[name] = value
    return values


def fuzzer(strategy, base_url: str, session: requests.Session, found: set[str]):
    """A bounded Hypothesis run of one operation that records every failed check in
    ``found`` (one line each) and returns how many calls it made."""
    calls = 0

    @seed(13)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data) -> None:
        nonlocal calls
        case = data.draw(strategy)
        response = case.call(base_url=base_url, session=session, timeout=30)
        calls += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:  # kept; the run goes on
            failed = getattr(exc, "exceptions", [exc])
            for failure in failed:
                title = getattr(failure, "title", "") or str(failure).splitlines()[0]
                found.add(f"{response.status_code} {case.method} {case.formatted_path}"
                          f"{'?' + str(case.query) if case.query else ''}: {title}: "
                          f"{response.text[:160]}")

    def go() -> int:
        run()
        return calls

    return go


def test_every_operation_answers_within_its_schema(live_server, users, objects):
    started = time.monotonic()
    token = Token.objects.create(user=users["admin"]).key
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    raw = session.get(f"{live_server.url}/api/schema/?format=json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: dict[str, set[str]] = defaultdict(set)
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    only = os.environ.get("SPIDER_FUZZ_ONLY", "")  # e.g. "/reviews/": one part, quickly
    for op in operations:
        if (op.method.upper(), op.path) in SKIP or only not in op.path:
            continue
        label = f"{op.method.upper()} {op.path}"
        fixed = path_values(op, objects)
        for mode in (schemathesis.GenerationMode.POSITIVE,
                     schemathesis.GenerationMode.NEGATIVE):
            run = fuzzer(op.as_strategy(generation_mode=mode, path_parameters=fixed),
                         live_server.url, session, failures[label])
            try:
                calls += run()
            except Unsatisfiable:  # nothing to make invalid: only fixed path parameters
                assert mode == schemathesis.GenerationMode.NEGATIVE, label

    failures = defaultdict(set, {label: found for label, found in failures.items() if found})
    report = "\n".join(f"{label}\n    " + "\n    ".join(sorted(found)[:4])
                       for label, found in sorted(failures.items()))
    print(f"\nschemathesis: {len(operations)} operations, {calls} calls, "
          f"{time.monotonic() - started:.0f} s, {len(failures)} with failures")
    session.close()
    assert not failures, report


def test_the_success_answers_match_the_schema(live_server, users, imported, objects):
    """The fuzzer rarely guesses a patch's version or a free lease, so the happy path of the
    writing operations is sent once by hand and checked against the same schema."""
    token = Token.objects.create(user=users["admin"]).key
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    schema = schemathesis.openapi.from_dict(
        session.get(f"{live_server.url}/api/schema/?format=json", timeout=30).json())
    first, second, third = Patch.objects.filter(project=imported).order_by("id")[:3]
    slug = {"project_slug": imported.slug}
    api = "/api/projects/{project_slug}"
    sent = [
        ("POST", "/api/auth/token/", {}, {"username": "reviewer", "password": "pw"}, 200),
        ("POST", f"{api}/queues/{{queue}}/next/", {"queue": "unreviewed"}, {"count": 2}, 200),
        ("POST", f"{api}/patches/{{patch_id}}/lease/", {"patch_id": third.pk},
         {"queue": "unreviewed"}, 200),
        ("POST", f"{api}/patches/{{patch_id}}/reviews/", {"patch_id": first.pk},
         {"action": "confirm", "patch_version": first.version}, 201),
        ("POST", f"{api}/patches/{{patch_id}}/reviews/", {"patch_id": first.pk},
         {"action": "confirm", "patch_version": first.version}, 409),  # now stale
        ("POST", f"{api}/reviews/batch/", {}, {"decisions": [
            {"patch": second.pk, "action": "confirm", "patch_version": second.version}]}, 200),
        ("POST", f"{api}/inference-jobs/", {}, {"kind": "train", "epochs": 1}, 201),
    ]
    wrong = []
    for method, path, params, body, expected in sent:
        case = schema[path][method].Case(path_parameters={**slug, **params}, body=body,
                                         media_type="application/json")
        response = case.call(base_url=live_server.url, session=session, timeout=30)
        try:
            assert response.status_code == expected, response.text[:300]
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:
            wrong.append(f"{method} {path} {response.status_code}: {exc}"[:600])
    session.close()
    from spider_web.celery import app

    app.control.purge()  # the train job queued above: no worker here
    assert wrong == [], "\n".join(wrong)
