"""Stores keep when they last became active until what follows an activation (shop
details, the welcome, the catalog read afresh) has run: reconciliation queues that task
again while the mark stays, so a task lost with a killed worker is not lost for good.
Nullable, so a web process of the release before can still create stores while this runs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("stores", "0008_shop_time_zone"),
    ]

    operations = [
        migrations.AddField(
            model_name="store",
            name="after_install_due_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
