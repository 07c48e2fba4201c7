"""Dashboards: kappa by hand, agreement with consensus, the change matrix, the pages."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotations.actions import set_membership
from annotations.dashboards import change_matrix, cohen_kappa, pair_kappas, reviewer_rows
from annotations.models import Patch, Role
from annotations.reviewing import Decision, submit


def test_cohen_kappa_by_hand():
    # 10 items, 2 raters: a/a x4, b/b x4, a/b x1, b/a x1 -> po 0.8, pe 0.5, kappa 0.6
    votes = [("a", "a")] * 4 + [("b", "b")] * 4 + [("a", "b"), ("b", "a")]
    kappa, observed = cohen_kappa(votes)
    assert observed == pytest.approx(0.8) and kappa == pytest.approx(0.6)
    assert cohen_kappa([("a", "a")] * 3) == (None, 1.0)  # no variation: undefined
    assert cohen_kappa([]) == (None, None)


def test_double_reads_give_kappa_agreement_and_change_matrix(client, users, imported):
    imported.reviews_required = 2
    imported.save()
    second = get_user_model().objects.create_user("second", password="pw")
    set_membership(imported, second, Role.REVIEWER)
    patches = list(Patch.objects.filter(project=imported).order_by("id")[:4])
    other = {p.pk: imported.classes.exclude(pk=p.current_label_id).first().pk for p in patches}

    def decide(user, patch, action, label=None):
        patch.refresh_from_db()
        submit(imported, user, patch.pk, Decision(action, patch.version, label))

    for p in patches[:3]:  # both confirm three
        decide(users["reviewer"], p, "confirm")
        decide(second, p, "confirm")
    decide(users["reviewer"], patches[3], "confirm")  # they disagree on the fourth
    decide(second, patches[3], "correct", other[patches[3].pk])

    (pair,) = pair_kappas(imported)
    assert (pair.first, pair.second, pair.items) == ("reviewer", "second", 4)
    assert pair.observed == pytest.approx(0.75)
    rows = {r.username: r for r in reviewer_rows(imported)}
    assert rows["reviewer"].decisions == rows["second"].decisions == 4
    assert rows["reviewer"].agreement == 1.0 and rows["reviewer"].compared == 3  # 4th disputed

    names, matrix = change_matrix(imported)
    assert sum(map(sum, matrix)) == 3 and len(names) == len(matrix)

    client.force_login(users["viewer"])
    page = client.get(f"/p/{imported.slug}/reviewers/").content.decode()
    assert "reviewer · second" in page and "0.75" in page
    project_page = client.get(f"/p/{imported.slug}/").content.decode()
    assert 'id="change-matrix"' in project_page and 'id="queue-sizes"' in project_page
    assert "disputed" in project_page


def test_project_page_shows_the_audit_estimate(client, users, imported):
    from annotations.queues import queue_queryset

    first, second = list(queue_queryset(imported, "audit")[:2])
    submit(imported, users["reviewer"], first.pk, Decision("confirm", first.version))
    wrong = imported.classes.exclude(pk=second.current_label_id).first().pk
    submit(imported, users["reviewer"], second.pk, Decision("correct", second.version, wrong))
    client.force_login(users["viewer"])
    page = client.get(f"/p/{imported.slug}/").content.decode()
    assert "1 of 2</strong> labels were wrong" in page and "95% CI" in page
