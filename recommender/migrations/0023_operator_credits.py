"""Operators can give a store credits (manage.py grant_credits): a ledger entry of its own
kind, with the reason kept beside it. The note column keeps its default in the database,
so that a web process of the release before can still write entries while this runs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0022_index_events_on_the_database_clock"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="note",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("grant", "Starter grant"),
                    ("earn", "Earned (click sent)"),
                    ("spend", "Spent (click received)"),
                    ("held", "Earned, held for review"),
                    ("release", "Held earning released"),
                    ("void", "Held earning voided"),
                    ("operator", "Credits from the Interlayer team"),
                ],
                max_length=10,
            ),
        ),
    ]
