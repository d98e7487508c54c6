from django.db import migrations


class Migration(migrations.Migration):
    """Where the widget appears is chosen in the theme editor's block settings only."""

    dependencies = [("recommender", "0003_settings_change_audit")]

    operations = [migrations.RemoveField(model_name="widgetsettings", name="placement")]
