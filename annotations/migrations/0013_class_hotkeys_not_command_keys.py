"""Class hotkeys the review pages can use: none of their command keys, all in lower case.

An import used to hand ``m`` and ``n`` to a project's 22nd and 23rd classes, and the classes
form took them and upper-case keys, which the pages never match. Such a hotkey is cleared
(an admin gives the class another on the classes page); an upper-case one is lowered, or
cleared when the lower-case key is another class's. The keys are written out here, not
imported: a migration must not change when the code does.
"""

from django.db import migrations

COMMAND_KEYS = {"s", "u", "x", "n", "m"}


def usable_hotkeys(apps, schema_editor):
    LabelClass = apps.get_model("annotations", "LabelClass")
    for label in LabelClass.objects.exclude(hotkey="").order_by("project_id", "index"):
        lower = label.hotkey.lower()
        if lower in COMMAND_KEYS:
            label.hotkey = ""
        elif lower != label.hotkey:
            taken = LabelClass.objects.filter(project_id=label.project_id, hotkey=lower)
            label.hotkey = "" if taken.exclude(pk=label.pk).exists() else lower
        else:
            continue
        label.save(update_fields=["hotkey"])


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0012_import_job_confined"),
    ]

    operations = [
        migrations.RunPython(usable_hotkeys, migrations.RunPython.noop),
    ]
