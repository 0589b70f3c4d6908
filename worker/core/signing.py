"""``worker.core.signing``: the path the README showed for signing a raw
producer's call; the code lives in :mod:`worker.wire.signing`."""

from ..wire.signing import SIGNED_FIELDS, VERSION, SignedCall, args_digest, canonical, sign, verify

__all__ = ["SIGNED_FIELDS", "VERSION", "SignedCall", "args_digest", "canonical", "sign", "verify"]
