"""Every URL pattern of the URLconf, requested by anonymous, non-member, viewer, reviewer and
admin: the matrix below says who may use each, and a pattern it does not list fails.

The matrix is written here by hand, apart from the app's authorisation map
(annotations.permissions), so a role changed there without changing it here fails too.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from annotations.models import ExportJob, ImportJob, LabelClass, Lease, Patch, Slide
from annotations.reviewing import Decision, submit
from annotations.sample_data import sample_image_path
from inference.models import EmbeddingSpace, InferenceJob, ModelVersion

ROLES = ("anonymous", "outsider", "viewer", "reviewer", "admin")
LEVEL = {"viewer": 0, "reviewer": 1, "admin": 2}

# (route as the URLconf spells it, method) -> who may: public, login, viewer, reviewer, admin
MATRIX: dict[tuple[str, str], str] = {
    ("accounts/login/", "GET"): "public",
    ("accounts/logout/", "POST"): "logout",  # anyone; then the login page
    ("accounts/password_change/", "GET"): "login",
    ("accounts/password_change/done/", "GET"): "login",
    ("accounts/password_reset/", "GET"): "public",
    ("accounts/password_reset/done/", "GET"): "public",
    ("accounts/reset/<uidb64>/<token>/", "GET"): "public",
    ("accounts/reset/done/", "GET"): "public",
    ("api/schema/", "GET"): "login",  # like every other endpoint (issue 13)
    ("api/docs/", "GET"): "login",
    ("api/auth/token/", "POST"): "public",
    ("api/auth/token/revoke/", "POST"): "login",
    ("api/tiles/<int:tile_id>/image/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/queues/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/queues/<str:queue>/next/", "POST"): "reviewer",
    ("api/projects/<slug:project_slug>/patches/<int:patch_id>/reviews/", "POST"): "reviewer",
    ("api/projects/<slug:project_slug>/patches/<int:patch_id>/lease/", "POST"): "reviewer",
    ("api/projects/<slug:project_slug>/patches/<int:patch_id>/skip/", "POST"): "reviewer",
    ("api/projects/<slug:project_slug>/reviews/batch/", "POST"): "reviewer",
    ("api/^projects/$", "GET"): "login",
    ("api/^projects/(?P<slug>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/classes/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/classes/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/slides/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/slides/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/slides/(?P<pk>[^/.]+)/heatmap/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/slides/(?P<pk>[^/.]+)/metrics/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/patches/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/patches/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/import-jobs/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/import-jobs/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/import-jobs/(?P<pk>[^/.]+)/cancel/$", "POST"):
        "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/import-jobs/(?P<pk>[^/.]+)/resume/$", "POST"):
        "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/export-jobs/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/export-jobs/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/export-jobs/(?P<pk>[^/.]+)/cancel/$", "POST"):
        "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/export-jobs/(?P<pk>[^/.]+)/resume/$", "POST"):
        "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/leases/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/leases/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/reviews/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/reviews/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/models/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/models/(?P<pk>[^/.]+)/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/models/(?P<pk>[^/.]+)/activate/$", "POST"):
        "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/inference-jobs/$", "GET"): "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/inference-jobs/$", "POST"): "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/inference-jobs/(?P<pk>[^/.]+)/$", "GET"):
        "viewer",
    ("api/^projects/(?P<project_slug>[-\\w]+)/inference-jobs/(?P<pk>[^/.]+)/cancel/$",
     "POST"): "admin",
    ("api/^projects/(?P<project_slug>[-\\w]+)/inference-jobs/(?P<pk>[^/.]+)/resume/$",
     "POST"): "admin",
    ("p/<slug:slug>/predict/", "POST"): "admin",
    ("p/<slug:slug>/train/", "POST"): "admin",
    ("p/<slug:slug>/models/<int:version_id>/activate/", "POST"): "admin",
    ("api/projects/<slug:project_slug>/similar/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/similarity-jobs/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/similarity-jobs/", "POST"): "reviewer",  # index: admin
    ("api/projects/<slug:project_slug>/candidates/<int:patch_id>/answer/", "POST"): "reviewer",
    ("p/<slug:slug>/similarity/index/", "POST"): "admin",
    ("p/<slug:slug>/similarity/prototypes/", "POST"): "admin",
    ("p/<slug:slug>/similarity/candidates/", "POST"): "reviewer",
    ("api/projects/<slug:project_slug>/rounds/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/rounds/", "POST"): "admin",
    ("api/projects/<slug:project_slug>/retrain-policy/", "GET"): "viewer",  # PUT: admin
    ("api/projects/<slug:project_slug>/label-issues/", "GET"): "viewer",
    ("api/projects/<slug:project_slug>/crowd/", "GET"): "viewer",
    ("p/<slug:slug>/rounds/", "GET"): "viewer",
    ("p/<slug:slug>/rounds/start/", "POST"): "admin",
    ("p/<slug:slug>/rounds/policy/", "POST"): "admin",
    ("", "GET"): "login",
    ("p/<slug:slug>/", "GET"): "viewer",
    ("p/<slug:slug>/patches/", "GET"): "viewer",
    ("p/<slug:slug>/patches/<int:patch_id>/", "GET"): "viewer",
    ("p/<slug:slug>/members/", "GET"): "admin",
    ("p/<slug:slug>/members/", "POST"): "admin",
    ("p/<slug:slug>/classes/", "GET"): "admin",
    ("p/<slug:slug>/classes/", "POST"): "admin",
    ("p/<slug:slug>/settings/", "GET"): "admin",
    ("p/<slug:slug>/settings/", "POST"): "admin",
    ("p/<slug:slug>/imports/", "POST"): "admin",
    ("p/<slug:slug>/jobs/<str:job_type>/<int:job_id>/<str:operation>/", "POST"): "admin",
    ("tiles/<int:tile_id>/", "GET"): "viewer",
    ("p/<slug:slug>/plots/<slug:name>.svg", "GET"): "viewer",
    ("p/<slug:slug>/slides/<int:slide_id>/", "GET"): "viewer",
    ("p/<slug:slug>/slides/<int:slide_id>/slide.dzi", "GET"): "viewer",
    ("p/<slug:slug>/slides/<int:slide_id>/slide_files/<int:level>/<int:col>_<int:row>.jpeg",
     "GET"): "viewer",
    ("p/<slug:slug>/exports/", "POST"): "reviewer",
    ("p/<slug:slug>/exports/<int:job_id>/download/", "GET"): "viewer",
    ("p/<slug:slug>/review/", "GET"): "reviewer",
    ("p/<slug:slug>/review/grid/", "GET"): "reviewer",
    ("p/<slug:slug>/reviewers/", "GET"): "viewer",
}
ADMIN_PREFIX = "admin/"  # Django's admin: staff only, checked as one entry below


def routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    found = []
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            found += routes(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append(prefix + str(pattern.pattern))
    return found


@pytest.fixture
def objects(imported, users, settings):
    """One object of every kind the URLs name, so an allowed request never 404s."""
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    second = Patch.objects.filter(project=imported).order_by("id")[1]
    submit(imported, users["reviewer"], patch.pk,
           Decision(action="confirm", patch_version=patch.version))  # a settled, visible review
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=imported, name="v", space=space, head_file="h", head_sha256="0" * 64,
        class_names=list(LabelClass.objects.filter(project=imported).values_list("name",
                                                                                 flat=True)),
        source="registered")
    name = default_storage.save("exports/skin/x.zip", ContentFile(b"zip"))
    export = ExportJob.objects.create(project=imported, kind="hf", status="succeeded",
                                      result_file=name)
    expires = timezone.now() + timedelta(minutes=5)
    held = Patch.objects.filter(project=imported).order_by("id")[2]  # not touched by POSTs
    leases = {u: Lease.objects.create(patch=held, reviewer=users[u], queue="unreviewed",
                                      expires_at=expires).pk
              for u in ("viewer", "reviewer", "admin")}
    return {
        "slug": imported.slug, "project_slug": imported.slug, "patch_id": second.pk,
        "tile_id": patch.centre_tile_id, "version_id": version.pk,
        "export_id": export.pk, "leases": leases,
        "import_job": ImportJob.objects.create(project=imported, kind="spider",
                                               source="/x").pk,
        "inference_job": InferenceJob.objects.create(project=imported, kind="predict",
                                                     space=space).pk,
        "review": patch.reviews.first().pk, "class": LabelClass.objects.filter(
            project=imported).first().pk,
        "slide": whole_slide(imported).pk, "patch": patch.pk,
    }


def whole_slide(project) -> Slide:
    """A whole slide (the real sample file) for the slide page, its tiles and heatmap."""
    return Slide.objects.create(project=project, name="wsi", source_file=str(sample_image_path()),
                                width=2220, height=2967, mpp=0.499, tile_px=224)


def url_for(route: str, o: dict, user: str) -> str:
    """A concrete URL for ``route`` naming the fixture's objects."""
    pk = None
    for key, value in (("import-jobs", o["import_job"]), ("export-jobs", o["export_id"]),
                       ("inference-jobs", o["inference_job"]), ("/models/", o["version_id"]),
                       ("/reviews/(?P", o["review"]), ("/classes/", o["class"]),
                       ("/slides/", o["slide"]), ("/patches/(?P", o["patch"])):
        if key in route:
            pk = value
            break
    if "/leases/" in route:
        pk = o["leases"].get(user, o["leases"]["admin"])
    values = {"slug": o["slug"], "project_slug": o["slug"], "patch_id": o["patch_id"],
              "tile_id": o["tile_id"], "version_id": o["version_id"], "job_id": o["export_id"],
              "queue": "unreviewed", "pk": pk, "uidb64": "MQ", "token": "set-password",
              "job_type": "export", "operation": "resume",
              "name": "class_counts", "slide_id": o["slide"], "level": 12, "col": 0,
              "row": 0}
    url = route.lstrip("^").replace("$", "")
    url = re.sub(r"\^", "", url)
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), url)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), url)
    return "/" + url


BODIES = {"reviews/": {"action": "confirm", "patch_version": 1},
          "batch/": {"items": []}, "next/": {"count": 1},
          "inference-jobs/$": {"kind": "predict"}, "members/": {"username": "nobody"},
          "classes/": {"name": "New class", "colour": "#123456"},
          "imports/": {"kind": "spider", "path": "/nowhere"},
          "exports/": {"kind": "csv"}, "auth/token/": {"username": "x", "password": "y"}}


def body_for(route: str) -> dict:
    return next((b for key, b in BODIES.items() if route.endswith(key) or key in route), {})


def expected(rule: str, role: str, route: str) -> str:
    api = route.startswith("api/")
    if rule == "logout":
        return "login-redirect"
    if rule == "public":
        return "allowed"
    if role == "anonymous":
        return "api-refused" if api else "login-redirect"
    if rule == "login":
        return "allowed"
    if role == "outsider":
        return "not-found"
    return "allowed" if LEVEL[role] >= LEVEL[rule] else "forbidden"


def outcome(response, api: bool) -> str:
    code = response.status_code
    if code >= 500:
        return f"server error {code}"
    if code == 302 and "/accounts/login/" in response.get("Location", ""):
        return "login-redirect"
    if code in (401, 403):
        return "api-refused" if api and not response.wsgi_request.user.is_authenticated \
            else "forbidden"
    if code == 404:
        return "not-found"
    return "allowed"


def test_every_url_pattern_is_in_the_matrix():
    listed = {route for route, _ in MATRIX}
    present = [r for r in routes(get_resolver()) if not r.startswith(ADMIN_PREFIX)]
    assert sorted(set(present) - listed) == [], "URL patterns missing from MATRIX"
    assert sorted(listed - set(present)) == [], "MATRIX lists patterns that are gone"


@pytest.mark.django_db
def test_each_role_gets_what_the_matrix_says(client, users, objects):
    wrong = []
    for (route, method), rule in MATRIX.items():
        for role in ROLES:
            client.logout()
            if role != "anonymous":
                client.force_login(users[role])
            url = url_for(route, objects, role)
            call = client.get if method == "GET" else client.post
            response = call(url, body_for(route), content_type="application/json") \
                if method == "POST" and route.startswith("api/") else call(url, body_for(route)
                                                                          if method == "POST"
                                                                          else {})
            got, want = outcome(response, route.startswith("api/")), expected(rule, role, route)
            if got != want:
                wrong.append(f"{method} {url} as {role}: {got} ({response.status_code}), "
                             f"matrix says {want}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.django_db
def test_django_admin_is_for_staff_only(client, users):
    client.force_login(users["admin"])  # a project admin is not Django staff
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert any(r.startswith(ADMIN_PREFIX) for r in routes(get_resolver()))
