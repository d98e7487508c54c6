"""Index events take their time from the database's clock, which the processes polling
them judge their age by too: a machine whose clock was behind wrote events that looked
settled at once, and a web machine whose clock was ahead took fresh events for settled;
either moved a watermark past a lower id still committing, which was then skipped. Only
the column's default changes; a process of the release before still writes its own."""

from django.db import migrations, models
from django.db.models.functions import Now


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0021_voided_clicks_counted"),
    ]

    operations = [
        migrations.AlterField(
            model_name="indexevent",
            name="created_at",
            field=models.DateTimeField(db_default=Now()),
        ),
    ]
