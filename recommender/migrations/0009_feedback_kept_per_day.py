import datetime

from django.db import migrations, models


def forget_the_window_totals(apps, schema_editor):
    # The rows were 30-day totals; the learner's next run counts the window again, per day.
    apps.get_model("recommender", "ItemFeedback").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("recommender", "0008_clicks_recorded_before_they_are_settled"),
    ]

    operations = [
        migrations.RunPython(forget_the_window_totals, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="itemfeedback",
            name="one_feedback_row_per_page_and_item",
        ),
        migrations.AddField(
            model_name="itemfeedback",
            name="day",
            field=models.DateField(default=datetime.date(2026, 1, 1)),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="itemfeedback",
            constraint=models.UniqueConstraint(
                fields=("day", "page_cluster", "product"),
                name="one_feedback_row_per_day_page_and_item",
            ),
        ),
    ]
