"""Model signatures: the one edge for OpenSSF model-signing (PyPI ``model-signing``).

A signature covers the whole model directory: model-signing hashes every file (sha256) into a
manifest, wraps it in an in-toto statement whose subject digest is the sha256 over those file
digests, and signs that in a Sigstore bundle (a JSON file). Who signs:

- on GitHub, the promotion workflow, keyless: Sigstore issues a short-lived certificate for the
  workflow's OIDC identity (``FLIGHTDELAY_SIGNER=sigstore``; the job needs ``id-token: write``);
- elsewhere (and in tests), an elliptic-curve key pair: ``FLIGHTDELAY_SIGNING_KEY`` is the PEM
  private key.

Who a verifier expects (one of):

- ``FLIGHTDELAY_MODEL_PUBKEY``: the PEM public key of that pair;
- ``FLIGHTDELAY_MODEL_IDENTITY``: the Sigstore certificate identity, for this repository
  ``https://github.com/<owner>/<repo>/.github/workflows/promote.yml@refs/heads/main``, issued by
  ``FLIGHTDELAY_MODEL_OIDC_ISSUER`` (default GitHub Actions' issuer); optionally
  ``FLIGHTDELAY_SIGSTORE_TRUST_CONFIG``, a Sigstore client trust config to use instead of
  fetching Sigstore's public trust root.

Every failure is a :class:`SignatureError` whose message is one line; :class:`UnsignedError` when
there is no signature at all (the one case an operator may override for an old version).
model-signing and sigstore are imported only when a signature is made or checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from flightdelay.core.io import DataFileError, sha256_file

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
SIGNING_KEY_ENV = "FLIGHTDELAY_SIGNING_KEY"
SIGNER_ENV = "FLIGHTDELAY_SIGNER"
PUBKEY_ENV = "FLIGHTDELAY_MODEL_PUBKEY"
IDENTITY_ENV = "FLIGHTDELAY_MODEL_IDENTITY"
ISSUER_ENV = "FLIGHTDELAY_MODEL_OIDC_ISSUER"
TRUST_CONFIG_ENV = "FLIGHTDELAY_SIGSTORE_TRUST_CONFIG"
SIGNATURE_ENV = "FLIGHTDELAY_MODEL_SIGNATURE"
REQUIRE_ENV = "FLIGHTDELAY_REQUIRE_SIGNATURE"
SIGNATURE_SUFFIX = ".sig"


class SignatureError(DataFileError):
    """A model's signature is missing, unreadable, by someone else, or over other files."""


class UnsignedError(SignatureError):
    """The model has no signature at all."""


class SignatureInfo(BaseModel):
    """Who signed a model and what: shown by /version, release.json and the version's card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["key", "sigstore"]
    signer: str  # "key sha256:<fingerprint of the public key>" or the certificate identity
    issuer: str | None = None  # the OIDC issuer of a Sigstore identity
    digest: str  # "sha256:<hex>": the signed manifest's digest over every file's sha256
    files: int

    def line(self) -> str:
        """One line for a card or a log: signer (issuer), digest."""
        issuer = f" (issuer {self.issuer})" if self.issuer else ""
        return f"{self.signer}{issuer}; manifest digest {self.digest} over {self.files} files"


@dataclass(frozen=True)
class Signer:
    """How to sign: a PEM private key, or Sigstore keyless with the ambient OIDC identity."""

    private_key: Path | None = None
    trust_config: Path | None = None

    @property
    def method(self) -> Literal["key", "sigstore"]:
        return "key" if self.private_key else "sigstore"


@dataclass(frozen=True)
class Expected:
    """Who must have signed: a PEM public key, or a Sigstore identity and issuer."""

    public_key: Path | None = None
    identity: str | None = None
    issuer: str = GITHUB_OIDC_ISSUER
    trust_config: Path | None = None

    def describe(self) -> str:
        if self.public_key is not None:
            return f"a signature by the key {self.public_key} ({key_fingerprint(self.public_key)})"
        return f"a Sigstore signature by {self.identity} (issuer {self.issuer})"


# ---------------------------------------------------------------- settings (environment)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def signer_from_env(environ: Mapping[str, str] | None = None) -> Signer:
    """The promotion's signer from the environment; SignatureError if none is configured."""
    environ = os.environ if environ is None else environ
    key, mode = _env(environ, SIGNING_KEY_ENV), _env(environ, SIGNER_ENV)
    trust = _env(environ, TRUST_CONFIG_ENV)
    if key:
        if mode not in (None, "key"):
            raise SignatureError(
                f"{SIGNER_ENV}={mode} and {SIGNING_KEY_ENV} are both set: keep one"
            )
        return Signer(private_key=Path(key))
    if mode == "sigstore":
        return Signer(trust_config=Path(trust) if trust else None)
    raise SignatureError(
        f"no model signer configured: set {SIGNING_KEY_ENV} (a PEM EC private key) or, in "
        f"GitHub Actions with `id-token: write`, {SIGNER_ENV}=sigstore"
        + (f" ({SIGNER_ENV}={mode!r} is neither)" if mode else "")
    )


def expected_from_env(environ: Mapping[str, str] | None = None) -> Expected | None:
    """The expected signer from the environment, or None when none is configured."""
    environ = os.environ if environ is None else environ
    key, identity = _env(environ, PUBKEY_ENV), _env(environ, IDENTITY_ENV)
    trust = _env(environ, TRUST_CONFIG_ENV)
    if key and identity:
        raise SignatureError(f"{PUBKEY_ENV} and {IDENTITY_ENV} are both set: expect one signer")
    if key:
        return Expected(public_key=Path(key))
    if identity:
        return Expected(
            identity=identity,
            issuer=_env(environ, ISSUER_ENV) or GITHUB_OIDC_ISSUER,
            trust_config=Path(trust) if trust else None,
        )
    return None


def required_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """FLIGHTDELAY_REQUIRE_SIGNATURE (the image sets it): refuse to serve without a verifier."""
    environ = os.environ if environ is None else environ
    value = (_env(environ, REQUIRE_ENV) or "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise SignatureError(f"{REQUIRE_ENV}={value!r}: expected true or false")
    return value in ("true", "1", "yes")


def signature_path(model_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where a model directory's signature is: $FLIGHTDELAY_MODEL_SIGNATURE, else ``<dir>.sig``."""
    environ = os.environ if environ is None else environ
    given = _env(environ, SIGNATURE_ENV)
    return Path(given) if given else model_dir.with_name(model_dir.name + SIGNATURE_SUFFIX)


# ---------------------------------------------------------------- reading a bundle


def key_fingerprint(public_key: Path) -> str:
    """``sha256:<hex>`` of the PEM public key (model-signing's key hint in the bundle)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"{public_key}: not a readable PEM public key ({exc})") from None
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"sha256:{hashlib.sha256(pem).hexdigest()}"


def read_statement(signature: Path) -> dict:
    """The in-toto statement a bundle signs (not verified: use only after :func:`verify`)."""
    if not signature.is_file():
        raise UnsignedError(f"no signature at {signature}")
    try:
        bundle = json.loads(signature.read_text(encoding="utf-8"))
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        statement["subject"][0]["digest"]["sha256"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SignatureError(
            f"signature {signature} is unreadable (truncated, or not a model-signing bundle: "
            f"{type(exc).__name__})"
        ) from None
    return dict(statement)


def _certificate_identity(signature: Path) -> tuple[str, str | None]:
    """(identity, issuer) of the Fulcio certificate in a Sigstore bundle."""
    from cryptography import x509

    bundle = json.loads(signature.read_text(encoding="utf-8"))
    material = bundle.get("verificationMaterial", {})
    raw = (material.get("certificate") or {}).get("rawBytes") or (
        (material.get("x509CertificateChain") or {}).get("certificates") or [{}]
    )[0].get("rawBytes")
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    identity = next(iter(names.get_values_for_type(x509.UniformResourceIdentifier)), None) or next(
        iter(names.get_values_for_type(x509.RFC822Name)), "unknown"
    )
    issuer_oid = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # Fulcio: the OIDC issuer
    try:
        extension = cert.extensions.get_extension_for_oid(issuer_oid).value
        issuer = bytes(getattr(extension, "value", b"")).decode() or None
    except x509.ExtensionNotFound:
        issuer = None
    return identity, issuer


def _info(
    signature: Path, method: Literal["key", "sigstore"], signer: str, issuer: str | None
) -> SignatureInfo:
    statement = read_statement(signature)
    return SignatureInfo(
        method=method,
        signer=signer,
        issuer=issuer,
        digest=f"sha256:{statement['subject'][0]['digest']['sha256']}",
        files=len(statement.get("predicate", {}).get("resources", [])),
    )


# ---------------------------------------------------------------- sign, verify


def sign(model_dir: Path, signature: Path, signer: Signer) -> SignatureInfo:
    """Sign every file of ``model_dir`` into ``signature`` (written whole or not at all)."""
    from model_signing import signing as ms

    if not model_dir.is_dir():
        raise SignatureError(f"{model_dir}: no model directory to sign")
    config = ms.Config()
    try:
        if signer.private_key is not None:
            config.use_elliptic_key_signer(private_key=signer.private_key)
        else:
            config.use_sigstore_signer(
                use_ambient_credentials=True, trust_config=signer.trust_config
            )
        signature.parent.mkdir(parents=True, exist_ok=True)
        partial = signature.with_name(signature.name + ".partial")
        config.sign(model_dir, partial)
        partial.replace(signature)
    except Exception as exc:  # model-signing and sigstore raise many types; all mean "not signed"
        raise SignatureError(
            f"signing {model_dir} with {signer.method} failed: {type(exc).__name__}: "
            + " ".join(str(exc).split())
        ) from None
    if signer.private_key is not None:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(signer.private_key.read_bytes(), None)
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _info(signature, "key", f"key sha256:{hashlib.sha256(pem).hexdigest()}", None)
    identity, issuer = _certificate_identity(signature)
    return _info(signature, "sigstore", identity, issuer)


def verify(model_dir: Path, signature: Path, expected: Expected) -> SignatureInfo:
    """Check that ``expected`` signed exactly the files of ``model_dir``; who and what signed.

    Raises UnsignedError without a signature file, SignatureError for anything else that is wrong.
    """
    from model_signing import verifying

    read_statement(signature)  # missing or truncated: say so before the library's parse error
    config = verifying.Config()
    if expected.public_key is not None:
        signer = f"key {key_fingerprint(expected.public_key)}"
        config.use_elliptic_key_verifier(public_key=expected.public_key)
    else:
        signer = str(expected.identity)
        config.use_sigstore_verifier(
            identity=signer, oidc_issuer=expected.issuer, trust_config=expected.trust_config
        )
    try:
        config.verify(model_dir, signature)
    except Exception as exc:  # the library raises ValueError and sigstore's own errors
        text = " ".join(str(exc).split())
        if text.startswith("Signature mismatch"):
            raise SignatureError(
                f"the files of {model_dir} differ from what was signed: "
                + "; ".join(_differences(model_dir, read_statement(signature)))
            ) from None
        raise SignatureError(
            f"signature {signature} was not made by the expected signer: "
            f"{type(exc).__name__}: {text}"
        ) from None
    differences = _differences(model_dir, read_statement(signature))
    if differences:  # model-signing skips .git* paths; the signature must cover every file
        raise SignatureError(
            f"the files of {model_dir} differ from what was signed: " + "; ".join(differences)
        )
    method: Literal["key", "sigstore"] = "key" if expected.public_key else "sigstore"
    return _info(signature, method, signer, None if expected.public_key else expected.issuer)


def _differences(model_dir: Path, statement: dict) -> list[str]:
    """Files of ``model_dir`` that are not as the statement signed them, one phrase each."""
    signed = {r["name"]: r["digest"] for r in statement.get("predicate", {}).get("resources", [])}
    present = {
        p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()
    }
    found = []
    for name in sorted(signed.keys() | present.keys()):
        if name not in present:
            found.append(f"{name} missing")
        elif name not in signed:
            found.append(f"{name} not signed")
        else:
            actual = sha256_file(present[name])
            if actual != signed[name]:
                found.append(f"{name} sha256 {actual[:12]}… signed as {signed[name][:12]}…")
    return found


def verify_configured(
    model_dir: Path, environ: Mapping[str, str] | None = None
) -> SignatureInfo | None:
    """Serving's check at start: verify when a signer is expected (environment), else None.

    With FLIGHTDELAY_REQUIRE_SIGNATURE true (the image) and no signer expected, refuse.
    """
    environ = os.environ if environ is None else environ
    expected = expected_from_env(environ)
    if expected is None:
        if required_from_env(environ):
            raise SignatureError(
                f"{REQUIRE_ENV} is set but no signer is expected: set {PUBKEY_ENV} or "
                f"{IDENTITY_ENV}"
            )
        return None
    signature = signature_path(model_dir, environ)
    try:
        return verify(model_dir, signature, expected)
    except SignatureError as exc:
        raise SignatureError(
            f"{model_dir}: refusing to serve: {exc}; expected {expected.describe()}"
        ) from None
