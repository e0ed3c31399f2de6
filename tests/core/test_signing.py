"""signing: real model-signing signatures over a model directory, made and checked with keys."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from flightdelay.core import signing
from flightdelay.core.signing import Expected, SignatureError, Signer, UnsignedError
from signing_keys import KeyPair


@pytest.fixture
def model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "context").mkdir(parents=True)
    (model / "model.json").write_text('{"name": "a"}')
    (model / "model.skops").write_bytes(b"weights" * 100)
    (model / "context" / "planes.parquet").write_bytes(b"planes")
    return model


@pytest.fixture
def signed(model: Path, keys: dict[str, KeyPair]) -> Path:
    signature = model.with_name("model.sig")
    signing.sign(model, signature, Signer(keys["promotion"].private))
    return signature


def expect(keys: dict[str, KeyPair], name: str = "promotion") -> Expected:
    return Expected(public_key=keys[name].public)


def test_sign_then_verify_names_the_key_and_the_digest(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    made = signing.sign(model, model.with_name("model.sig"), Signer(keys["promotion"].private))
    checked = signing.verify(model, model.with_name("model.sig"), expect(keys))
    assert checked == made
    assert checked.method == "key"
    assert checked.signer == f"key {signing.key_fingerprint(keys['promotion'].public)}"
    assert checked.digest.startswith("sha256:")
    assert len(checked.digest) == 7 + 64
    assert checked.files == 3
    assert checked.line().startswith(f"{checked.signer}; manifest digest {checked.digest}")


def test_verify_a_changed_file_names_it(model: Path, signed: Path, keys) -> None:
    (model / "model.skops").write_bytes(b"other weights")
    with pytest.raises(SignatureError, match=r"differ from what was signed: model\.skops sha256"):
        signing.verify(model, signed, expect(keys))


def test_verify_an_added_file_is_not_signed(model: Path, signed: Path, keys) -> None:
    (model / "context" / "extra.parquet").write_bytes(b"x")
    with pytest.raises(SignatureError, match=r"context/extra\.parquet not signed"):
        signing.verify(model, signed, expect(keys))


def test_verify_a_git_file_model_signing_skips_is_still_refused(
    model: Path, signed: Path, keys
) -> None:
    (model / ".gitignore").write_text("*")
    with pytest.raises(SignatureError, match=r"\.gitignore not signed"):
        signing.verify(model, signed, expect(keys))


def test_verify_a_removed_file_says_missing(model: Path, signed: Path, keys) -> None:
    (model / "context" / "planes.parquet").unlink()
    with pytest.raises(SignatureError, match=r"context/planes\.parquet missing"):
        signing.verify(model, signed, expect(keys))


def test_verify_a_signature_by_another_key_is_refused(model: Path, keys) -> None:
    other = model.with_name("other.sig")
    signing.sign(model, other, Signer(keys["other"].private))
    with pytest.raises(
        SignatureError, match=r"was not made by the expected signer: .*Key mismatch"
    ):
        signing.verify(model, other, expect(keys))


def test_verify_a_truncated_signature_says_unreadable(model: Path, signed: Path, keys) -> None:
    signed.write_bytes(signed.read_bytes()[: len(signed.read_bytes()) // 2])
    with pytest.raises(SignatureError, match=r"is unreadable \(truncated, or not a model-signing"):
        signing.verify(model, signed, expect(keys))


def test_verify_without_a_signature_is_unsigned(model: Path, keys) -> None:
    with pytest.raises(UnsignedError, match=r"no signature at .*model\.sig"):
        signing.verify(model, model.with_name("model.sig"), expect(keys))


def test_sign_writes_nothing_when_it_fails(model: Path, tmp_path: Path) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("not a key")
    with pytest.raises(SignatureError, match=r"signing .*model with key failed: ValueError"):
        signing.sign(model, tmp_path / "model.sig", Signer(not_a_key))
    assert not list(tmp_path.glob("model.sig*"))


def test_signer_from_env_without_any_says_what_to_set() -> None:
    with pytest.raises(SignatureError, match=r"set FLIGHTDELAY_SIGNING_KEY .* FLIGHTDELAY_SIGNER="):
        signing.signer_from_env({})
    assert signing.signer_from_env({"FLIGHTDELAY_SIGNER": "sigstore"}).method == "sigstore"
    assert signing.signer_from_env({"FLIGHTDELAY_SIGNING_KEY": "k.pem"}).method == "key"


def test_expected_from_env_reads_a_key_or_an_identity() -> None:
    assert signing.expected_from_env({}) is None
    assert signing.expected_from_env({"FLIGHTDELAY_MODEL_PUBKEY": "k.pub"}) == Expected(
        public_key=Path("k.pub")
    )
    identity = "https://github.com/o/r/.github/workflows/promote.yml@refs/heads/main"
    found = signing.expected_from_env({"FLIGHTDELAY_MODEL_IDENTITY": identity})
    assert found == Expected(identity=identity, issuer=signing.GITHUB_OIDC_ISSUER)
    assert found.describe() == (
        f"a Sigstore signature by {identity} (issuer https://token.actions.githubusercontent.com)"
    )
    with pytest.raises(SignatureError, match=r"are both set: expect one signer"):
        signing.expected_from_env(
            {"FLIGHTDELAY_MODEL_PUBKEY": "k.pub", "FLIGHTDELAY_MODEL_IDENTITY": identity}
        )


def test_verify_configured_is_off_by_default_and_refuses_when_required(model: Path) -> None:
    assert signing.verify_configured(model, {}) is None
    with pytest.raises(SignatureError, match=r"REQUIRE_SIGNATURE is set but no signer is expected"):
        signing.verify_configured(model, {"FLIGHTDELAY_REQUIRE_SIGNATURE": "true"})


def test_verify_configured_checks_the_sibling_signature(model: Path, signed: Path, keys) -> None:
    env = {"FLIGHTDELAY_MODEL_PUBKEY": str(keys["promotion"].public)}
    info = signing.verify_configured(model, env)
    assert info is not None
    assert info.method == "key"
    shutil.move(signed, model.with_name("elsewhere.sig"))
    with pytest.raises(SignatureError, match=r"refusing to serve: no signature at .*; expected a"):
        signing.verify_configured(model, env)
    env["FLIGHTDELAY_MODEL_SIGNATURE"] = str(model.with_name("elsewhere.sig"))
    assert signing.verify_configured(model, env) == info


def test_certificate_identity_reads_the_workflow_identity_and_issuer(tmp_path: Path) -> None:
    """What a Sigstore bundle's Fulcio certificate carries (made here: Fulcio needs GitHub)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    identity = "https://github.com/o/r/.github/workflows/promote.yml@refs/heads/main"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), False
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), signing.GITHUB_OIDC_ISSUER.encode()
            ),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    raw = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    bundle = tmp_path / "model.sig"
    bundle.write_text(json.dumps({"verificationMaterial": {"certificate": {"rawBytes": raw}}}))
    assert signing._certificate_identity(bundle) == (identity, signing.GITHUB_OIDC_ISSUER)
