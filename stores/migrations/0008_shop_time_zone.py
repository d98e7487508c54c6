"""Stores keep the shop's time zone (Shop.ianaTimezone), so that a merchant's figures are
counted in the shop's own days; read with the shop's details (at install, and daily by
reconciliation), UTC until then. The column keeps its default in the database, so that a
web process of the release before can still create stores while this runs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("stores", "0007_shop_frozen_status"),
    ]

    operations = [
        migrations.AddField(
            model_name="store",
            name="time_zone",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
    ]
