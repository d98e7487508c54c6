from django.db import migrations, models
from django.db.models import F


def confirmed_as_recorded(apps, schema_editor):
    """Orders recorded before confirmation existed stay in the figures they are in."""
    AttributedOrder = apps.get_model("recommender", "AttributedOrder")
    AttributedOrder.objects.filter(verified_at__isnull=True).update(verified_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0012_widget_title_in_the_shoppers_language"),
    ]

    operations = [
        migrations.AddField(
            model_name="attributedorder",
            name="verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(confirmed_as_recorded, migrations.RunPython.noop),
    ]
