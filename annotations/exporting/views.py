"""Pages for exports: start one (reviewers and admins), download a finished one (members)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from annotations.access import access_project
from annotations.actions import start_export
from annotations.models import ExportJob
from annotations.permissions import Act

from .jobs import download_name


@require_http_methods(["POST"])
def start_export_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.EXPORT)
    try:
        start_export(project, request.user, request.POST.get("kind", "hf"),
                     request.POST.getlist("status") or None,
                     request.POST.get("context", "none"))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Export queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


def download_export(request: HttpRequest, slug: str, job_id: int) -> FileResponse:
    project = access_project(request.user, slug)
    job = (ExportJob.objects.filter(project=project, pk=job_id,
                                    status=ExportJob.Status.SUCCEEDED)
           .exclude(result_file="").select_related("project").first())
    if job is None or not default_storage.exists(job.result_file):
        raise Http404("No such export")
    return FileResponse(default_storage.open(job.result_file, "rb"), as_attachment=True,
                        filename=download_name(job))
