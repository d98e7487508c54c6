"""Hooks other apps attach to (receivers are connected in their AppConfig.ready)."""

from django.dispatch import Signal

# Sent with ``store=`` once a store is (re)installed and its details are recorded; the
# catalog sync starts from here.
store_installed = Signal()
