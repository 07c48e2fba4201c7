"""Export jobs from the project page (Celery task, download, permissions), review statistics
and the push to a local stand-in of the Hugging Face Hub's HTTP API."""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

from annotations.exporting.review_stats import review_stats
from annotations.models import ExportJob, LabelClass, Patch, ReviewAction
from tests.test_export_hf import review


@pytest.fixture
def eager():
    """Run Celery tasks in this process."""
    from spider_web.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def start(client, user, project, **data):
    client.force_login(user)
    return client.post(reverse("start-export", args=[project.slug]), data, follow=True)


def test_reviewer_starts_exports_that_members_download(client, users, imported_4, eager,
                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(client, users["reviewer"], imported_4, kind="hf",
                         status=["unreviewed"])
    assert "Export queued" in response.content.decode()
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    assert job.created_by == users["reviewer"] and job.options["statuses"] == ["unreviewed"]
    assert job.done == job.total == Patch.objects.filter(project=imported_4).count()

    client.force_login(users["viewer"])
    page = client.get(reverse("project-detail", args=[imported_4.slug])).content.decode()
    url = reverse("export-download", args=[imported_4.slug, job.pk])
    assert 'id="export-jobs"' in page and url in page and 'id="start-export"' not in page
    response = client.get(url)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    prefix = f"skin-hf-export-{job.pk}/"
    assert sorted(archive.namelist()) == sorted(prefix + path for path in job.files)
    assert archive.read(prefix + "README.md").startswith(b"---\n")

    with django_capture_on_commit_callbacks(execute=True):
        start(client, users["admin"], imported_4, kind="csv")
    csv_job = ExportJob.objects.get(kind=ExportJob.Kind.CSV)
    client.force_login(users["viewer"])
    body = b"".join(client.get(reverse("export-download", args=[imported_4.slug, csv_job.pk]))
                    .streaming_content).decode()
    assert body.startswith("patch_id,slide_id,split,") and body.count("\n") == job.total + 1


def test_who_may_start_and_download(client, users, imported, eager,
                                    django_capture_on_commit_callbacks):
    assert start(client, users["viewer"], imported, kind="hf").status_code == 403
    assert start(client, users["outsider"], imported, kind="hf").status_code == 404
    assert not ExportJob.objects.exists()
    response = start(client, users["reviewer"], imported, kind="parquet")
    assert "unknown export kind 'parquet'" in html.unescape(response.content.decode())
    response = start(client, users["reviewer"], imported, kind="hf", status=["done"])
    assert "unknown review status 'done'" in html.unescape(response.content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        start(client, users["reviewer"], imported, kind="spider")
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    url = reverse("export-download", args=[imported.slug, job.pk])
    client.force_login(users["outsider"])
    assert client.get(url).status_code == 404
    client.force_login(users["viewer"])
    assert client.get(url).status_code == 200
    client.logout()
    assert client.get(url).status_code in (302, 403)


def test_a_failed_export_is_recorded_with_its_reason(client, users, imported, eager,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        start(client, users["reviewer"], imported, kind="hf", status=["disputed"])
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and "no patch of 'skin' matches" in job.error
    client.force_login(users["viewer"])
    assert "no patch of" in client.get(reverse("project-detail", args=[imported.slug])
                                       ).content.decode()
    assert client.get(reverse("export-download", args=[imported.slug, job.pk])
                      ).status_code == 404


def test_a_composite_asked_of_a_format_without_one_is_refused_not_dropped(
        client, users, imported, eager, django_capture_on_commit_callbacks):
    """The page offered "1120x1120 composite" for every format; the SPIDER layout and CSV
    exports quietly left it out (found by a browser walk)."""
    for kind in ("spider", "csv"):
        with django_capture_on_commit_callbacks(execute=True):
            page = start(client, users["reviewer"], imported, kind=kind, context="composite")
        assert "made only for the Hugging Face format" in page.content.decode(), kind
    assert not ExportJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        start(client, users["reviewer"], imported, kind="spider", context="none")
    assert ExportJob.objects.get().kind == "spider"


def test_review_stats_follow_undo_and_agreement(imported, users):
    a, b, c, d = list(Patch.objects.filter(project=imported).order_by("id")[:4])
    classes = list(LabelClass.objects.filter(project=imported).order_by("index"))
    other = next(x for x in classes if x.pk != a.current_label_id)
    review(a, users["reviewer"], ReviewAction.CONFIRM)
    review(a, users["admin"], ReviewAction.CORRECT, other)  # a's label is now ``other``
    review(b, users["reviewer"], ReviewAction.CONFIRM)
    review(b, users["reviewer"], ReviewAction.CORRECT, other)
    review(b, users["reviewer"], ReviewAction.UNDO)  # back to the confirmation
    review(c, users["reviewer"], ReviewAction.UNSURE)
    review(c, users["reviewer"], ReviewAction.COMMENT)
    review(d, users["viewer"], ReviewAction.CONFIRM, expect=403)  # viewers do not review
    review(d, users["admin"], ReviewAction.CONFIRM)
    review(d, users["admin"], ReviewAction.UNDO)
    stats = review_stats([a.pk, b.pk, c.pk, d.pk])
    assert (stats[a.pk].n_reviews, stats[a.pk].agreement) == (2, 0.5)
    assert stats[a.pk].reviewers == ("admin", "reviewer")
    assert (stats[b.pk].n_reviews, stats[b.pk].agreement) == (1, 1.0)
    assert (stats[c.pk].n_reviews, stats[c.pk].agreement) == (1, 1.0)  # agrees with "unsure"
    assert (stats[d.pk].n_reviews, stats[d.pk].agreement, stats[d.pk].reviewers) == (0, None,
                                                                                      ())


class StandInHub(BaseHTTPRequestHandler):
    """The three calls huggingface_hub makes to create a repo and commit small files."""

    requests: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def reply(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                              "body": body})
        base = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            request = json.loads(body)
            self.reply({"url": f"{base}/datasets/{request['organization']}/{request['name']}"})
        elif self.path == "/api/validate-yaml":  # the Hub checks the card's front matter
            content = json.loads(body)["content"]
            matter = yaml.safe_load(content.split("---\n")[1])
            ok = isinstance(matter, dict) and "dataset_info" in matter
            self.reply({"errors": [] if ok else [{"message": "bad card"}], "warnings": []})
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            self.reply({"files": [{"path": f["path"], "uploadMode": "regular",
                                   "shouldIgnore": False} for f in files]})
        elif "/commit/" in self.path:
            self.reply({"commitUrl": f"{base}/datasets/lab/skin/commit/{'a' * 40}",
                        "commitOid": "a" * 40, "pullRequestUrl": None})
        else:
            self.send_error(404)


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants

    StandInHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT",
                        f"http://127.0.0.1:{server.server_address[1]}")
    yield StandInHub.requests
    server.shutdown()


def test_push_to_hub_commits_every_file_with_the_token_from_the_environment(
        imported, tmp_path, hub, monkeypatch):
    monkeypatch.setenv("LAB_HUB_TOKEN", "hf_secret_token_123")
    out, err = io.StringIO(), io.StringIO()
    call_command("export_hf", "--project", imported.slug, "--out", str(tmp_path / "hf"),
                 "--push-to-hub", "lab/skin", "--token-env", "LAB_HUB_TOKEN", "--private",
                 stdout=out, stderr=err)
    assert "Pushed:" in out.getvalue()
    assert [r["path"] for r in hub if "validate" in r["path"]] == ["/api/validate-yaml"]
    assert "hf_secret_token_123" not in out.getvalue() + err.getvalue()
    assert all(r["auth"] == "Bearer hf_secret_token_123" for r in hub)
    create = next(r for r in hub if r["path"] == "/api/repos/create")
    request = json.loads(create["body"])
    assert (request["organization"], request["name"], request["type"]) == ("lab", "skin",
                                                                           "dataset")
    assert request.get("visibility") == "private" or request.get("private") is True
    commit = next(r for r in hub if "/commit/" in r["path"])
    assert commit["path"].startswith("/api/datasets/lab/skin/commit/")
    committed = {}
    for line in commit["body"].decode().splitlines():
        item = json.loads(line)
        if item["key"] == "file":
            committed[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
    job = ExportJob.objects.get()
    assert set(committed) == set(job.files)
    assert committed["README.md"] == (tmp_path / "hf" / "README.md").read_bytes()
    assert job.options["push_to_hub"] == "lab/skin" and job.options["token_env"] == \
        "LAB_HUB_TOKEN"
    assert "hf_secret_token_123" not in json.dumps(job.options) + job.error


def test_push_without_a_token_stops_before_exporting(imported, tmp_path, monkeypatch):
    from django.core.management import CommandError

    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(CommandError, match="environment variable NO_SUCH_TOKEN"):
        call_command("export_hf", "--project", imported.slug, "--out", str(tmp_path / "hf"),
                     "--push-to-hub", "lab/skin", "--token-env", "NO_SUCH_TOKEN")
    assert not (tmp_path / "hf").exists() and not ExportJob.objects.exists()
