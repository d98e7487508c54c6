"""Encryption at rest for Shopify credentials (Fernet, with key rotation)."""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

log = logging.getLogger(__name__)


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.INTERLAYER_ENCRYPTION_KEYS)
    if not keys:
        # Development only (production refuses to start without keys): a key derived
        # from SECRET_KEY, so a fresh checkout works and nothing is stored in the clear.
        digest = hashlib.sha256(b"interlayer-tokens:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with the configured keys") from None


class EncryptedTextField(models.TextField):
    """A text column whose value is Fernet ciphertext in the database, plaintext in Python.

    A value no configured key opens (a key dropped during a rotation) reads as "": an
    unusable credential for that one store, never an exception that would take down every
    page that loads the row. The code that needs the token treats "" as gone and sends the
    store to re-authorisation (stores.services.access_token_for)."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return decrypt(value)
        except ValueError:
            log.warning("a stored %s cannot be decrypted with the configured keys", self.name)
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
