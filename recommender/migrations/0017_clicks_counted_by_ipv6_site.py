"""Clicks keep the IPv6 site (/48) they came from, hashed like their address, so that the
limits can count a site's clicks to one store: rotating through the /64s of one /48 made
every click a new address (rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR).

The columns keep their default in the database as well, so that clicks a web process of
the release before writes while this runs (it names no site) are still inserted. The index
covers billable clicks from IPv6 sites only, and is built concurrently on PostgreSQL, so
clicks are written all along.
"""

from django.db import migrations, models

from recommender.schema_operations import AddIndexWithoutBlockingWrites


def site_column() -> models.CharField:
    return models.CharField(blank=True, db_default="", default="", max_length=64)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("recommender", "0016_random_visitor_salts"),
        ("stores", "0007_shop_frozen_status"),
    ]

    operations = [
        migrations.AddField(model_name="click", name="previous_site_hash", field=site_column()),
        migrations.AddField(model_name="click", name="site_hash", field=site_column()),
        AddIndexWithoutBlockingWrites(
            model_name="click",
            index=models.Index(
                condition=models.Q(("billable", True), models.Q(("site_hash", ""), _negated=True)),
                fields=["site_hash", "created_at"],
                name="recommender_click_billed_site",
            ),
        ),
    ]
