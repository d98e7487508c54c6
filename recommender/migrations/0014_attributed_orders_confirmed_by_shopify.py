from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0013_widget_titles_left_at_the_old_default"),
    ]

    operations = [
        migrations.AddField(
            model_name="attributedorder",
            name="verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="attributedorder",
            name="asked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="attributedorder",
            name="rejected_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
