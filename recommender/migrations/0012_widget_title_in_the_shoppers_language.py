from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0011_clicks_table_keeps_the_indexes_it_reads"),
    ]

    operations = [
        migrations.AlterField(
            model_name="widgetsettings",
            name="title",
            field=models.CharField(blank=True, default="", max_length=80),
        ),
    ]
