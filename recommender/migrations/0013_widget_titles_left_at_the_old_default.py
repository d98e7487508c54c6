from django.db import migrations

OLD_DEFAULT = "You may also like"


def to_the_shoppers_language(apps, schema_editor):
    """Widgets still showing the old default (English on every storefront) now show the
    heading in each shopper's language; a title a merchant chose stays."""
    WidgetSettings = apps.get_model("recommender", "WidgetSettings")
    WidgetSettings.objects.filter(title=OLD_DEFAULT).update(title="")


def back_to_english(apps, schema_editor):
    WidgetSettings = apps.get_model("recommender", "WidgetSettings")
    WidgetSettings.objects.filter(title="").update(title=OLD_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0012_widget_title_in_the_shoppers_language"),
    ]

    operations = [migrations.RunPython(to_the_shoppers_language, back_to_english)]
