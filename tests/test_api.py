"""REST API: lists, filters, cursor paging, schema and the offline Swagger UI."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations.models import LabelClass, Patch


def test_patch_list_filters_and_cursor(client, users, imported):
    client.force_login(users["viewer"])
    cls = LabelClass.objects.filter(project=imported).order_by("index").last()
    url = f"/api/projects/{imported.slug}/patches/?current_label={cls.id}&page_size=5"
    ids = []
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url).json()
    assert len(queries) <= 8
    while True:
        ids += [p["id"] for p in page["results"]]
        assert all(p["current_label"] == cls.name for p in page["results"])
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    assert ids == list(Patch.objects.filter(project=imported, current_label=cls)
                       .order_by("id").values_list("id", flat=True))


def test_patch_detail_fields(client, users, imported):
    client.force_login(users["viewer"])
    patch = Patch.objects.filter(project=imported).first()
    data = client.get(f"/api/projects/{imported.slug}/patches/{patch.id}/").json()
    assert data["grid"] == patch.grid and len(data["grid"]) == 25
    assert data["centre_tile"] == patch.centre_tile_id
    assert data["original_label"] == patch.original_label.name
    assert data["slide"] == patch.slide.name and data["version"] == 1


def test_classes_and_projects(client, users, imported):
    client.force_login(users["reviewer"])
    classes = client.get(f"/api/projects/{imported.slug}/classes/").json()["results"]
    assert [c["name"] for c in classes] == list(
        LabelClass.objects.filter(project=imported).order_by("index").values_list("name",
                                                                                  flat=True))
    assert all(c["hotkey"] for c in classes)
    projects = client.get("/api/projects/").json()["results"]
    assert projects[0]["slug"] == imported.slug and projects[0]["role"] == "reviewer"
    assert projects[0]["patch_count"] == Patch.objects.filter(project=imported).count()


def test_invalid_filter_is_a_400(client, users, imported):
    client.force_login(users["viewer"])
    response = client.get(f"/api/projects/{imported.slug}/patches/?status=nonsense")
    assert response.status_code == 400 and "status" in response.json()


def test_openapi_schema_and_offline_swagger(client, users):
    client.force_login(users["viewer"])
    schema = client.get("/api/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/projects/{project_slug}/patches/" in schema["paths"]
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
