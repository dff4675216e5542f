"""The shop app; its ``ready()`` connects the receivers."""

from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """Connect both kinds of receivers once the models are loaded."""

    name = "shop"

    def ready(self) -> None:
        """Import the receivers module, which connects them."""
        from . import receivers  # noqa: F401, PLC0415 - connecting is the import's effect
