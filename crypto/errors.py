"""The exception tree shared by every module of the `crypto` package.

Callers catch `CryptoError` to handle any secret-handling failure at once, or a subclass to
react to one kind. Messages never contain key material, plaintext or signatures, because
they end up in logs.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised on purpose by the `crypto` package."""


class DecryptionError(CryptoError):
    """An envelope could not be decrypted: wrong key or context, tampered or malformed bytes."""


class UnknownKeyError(DecryptionError):
    """An envelope names a key id that the key ring does not hold (e.g. a retired key)."""


class SignatureError(CryptoError):
    """A webhook signature header is malformed, does not match, or is too old or too new."""
