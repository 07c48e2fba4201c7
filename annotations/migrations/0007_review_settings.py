"""Per-project lease time, the settings audit rows, and where each review came from.

Reviews recorded before ``source`` existed are classed by what the pages sent: the review
page always sent ``time_spent_ms``, grid mode (the batch endpoint) never did.
"""

import annotations.models.projects
import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def guess_sources(apps, schema_editor):
    Review = apps.get_model("annotations", "Review")
    Review.objects.filter(time_spent_ms__isnull=True).update(source="batch")


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0006_queue_scores'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='lease_seconds',
            field=models.PositiveIntegerField(default=annotations.models.projects.default_lease_seconds, help_text='how long a reviewer holds a queue item (renewed while their page asks)', validators=[django.core.validators.MinValueValidator(30), django.core.validators.MaxValueValidator(86400)]),
        ),
        migrations.AddField(
            model_name='review',
            name='source',
            field=models.CharField(choices=[('single', 'One at a time'), ('batch', 'Batch (grid)')], default='single', help_text='the decisions endpoint (single) or the batch one', max_length=8),
        ),
        migrations.RunPython(guess_sources, migrations.RunPython.noop),
        migrations.CreateModel(
            name='ProjectSettingChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('changed_at', models.DateTimeField(auto_now_add=True)),
                ('field', models.CharField(max_length=40)),
                ('old_value', models.CharField(max_length=40)),
                ('new_value', models.CharField(max_length=40)),
                ('changed_by', models.ForeignKey(on_delete=django.db.models.deletion.RESTRICT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='setting_changes', to='annotations.project')),
            ],
            options={
                'ordering': ['-changed_at', '-id'],
            },
        ),
    ]
