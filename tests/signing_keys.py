"""Real elliptic-curve key pairs for the signing tests (what FLIGHTDELAY_SIGNING_KEY and
FLIGHTDELAY_MODEL_PUBKEY point at outside GitHub)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class KeyPair:
    private: Path  # PEM, PKCS#8, unencrypted
    public: Path  # PEM SubjectPublicKeyInfo


def make_key_pair(directory: Path, name: str) -> KeyPair:
    """A fresh P-256 key pair written as ``<name>.pem`` and ``<name>.pub`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / f"{name}.pem", directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)
