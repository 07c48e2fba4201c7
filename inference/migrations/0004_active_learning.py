# Written for issue 14: confident learning's flags, retraining rounds and their policy.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotations', '0005_job_life_cycle'),
        ('inference', '0003_queue_scores'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='inferencejob',
            name='kind',
            field=models.CharField(choices=[('predict', 'Predict'), ('train', 'Train head'), ('round', 'Retraining round')], max_length=16),
        ),
        migrations.CreateModel(
            name='LabelIssue',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('given_label', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.labelclass')),
                ('likely_label', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotations.labelclass')),
                ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='label_issues', to='inference.modelversion')),
                ('patch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='label_issues', to='annotations.patch')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('model_version', 'patch'), name='label_issue_once')],
            },
        ),
        migrations.CreateModel(
            name='RetrainPolicy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('every_settled', models.PositiveIntegerField(default=0)),
                ('settled_at_last_round', models.PositiveIntegerField(default=0)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('project', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='retrain_policy', to='annotations.project')),
                ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
    ]
