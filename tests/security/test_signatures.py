"""Cosign signatures and attestations (issue 18): only a signature that verifies, for this very
digest, by a trusted key or a trusted keyless identity counts; everything else is one line of reason.

A real docker-registry on loopback holds images, signatures and attestations written exactly as
cosign writes them (tests/scanning/cosign_writer.py), signed with keys and certificates made here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stockade.scanning.signatures import Identity, SignatureTrust, load_trust, verify_reference
from tests.scanning.cosign_writer import (
    DSSE,
    ISSUER,
    SUBJECT,
    Pusher,
    Sigstore,
    b64,
    ecdsa_sign,
    pae,
    pem_public,
    simple_signing,
    statement,
)
from tests.scanning.registry_servers import docker_registry
from tests.support import require

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    with docker_registry(tmp_path_factory.mktemp("sigreg")) as host:
        yield host


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("sigkeys")
    signer, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (work / "cosign.pub").write_bytes(pem_public(signer))
    (work / "other.pub").write_bytes(pem_public(other))
    return {"signer": signer, "other": other, "dir": work, "sigstore": Sigstore(work)}


class Repo:
    """A repository of its own per test: an image, its reference and digest, a pusher."""

    def __init__(self, host: str) -> None:
        self.name = f"sig/{uuid.uuid4().hex[:10]}"
        self.push = Pusher(host, self.name)
        self.digest = self.push.image("1", f"app {self.name}\n".encode())  # a digest of its own
        self.ref = f"{host}/{self.name}:1"
        self.bare = f"{host}/{self.name}"


@pytest.fixture
def repos(registry: str) -> Iterator[Callable[[], Repo]]:
    made: list[Repo] = []

    def make() -> Repo:
        made.append(Repo(registry))
        return made[-1]

    yield make
    for r in made:
        r.push.close()


@pytest.fixture
def repo(repos: Callable[[], Repo]) -> Repo:
    return repos()


def key_trust(keys: dict[str, object], name: str = "cosign.pub") -> SignatureTrust:
    return load_trust(keys=[str(Path(str(keys["dir"])) / name)])


def keyless_trust(keys: dict[str, object], subject: str = SUBJECT) -> SignatureTrust:
    s: Sigstore = keys["sigstore"]  # type: ignore[assignment]
    return load_trust(
        identities=[Identity(subject=subject, issuer=ISSUER)],
        roots=[str(s.root_pem)],
        intermediates=[str(s.inter_pem)],
        rekor_keys=[str(s.rekor_pem)],
    )


def keyed(keys: dict[str, object], payload: bytes, which: str = "signer") -> dict[str, str]:
    sig = ecdsa_sign(keys[which], payload)  # type: ignore[arg-type]
    return {"dev.cosignproject.cosign/signature": b64(sig)}


def verify(repo: Repo, trust: SignatureTrust):
    return verify_reference(repo.ref, trust, insecure=True)


def test_valid_keyed_signature(repo: Repo, keys) -> None:
    payload = simple_signing(repo.bare, repo.digest)
    repo.push.signatures(repo.digest, [(payload, keyed(keys, payload))])
    check = verify(repo, key_trust(keys))
    assert check.signed and check.digest == repo.digest and check.rejected == ()
    [signer] = check.signers
    assert signer.kind == "key" and signer.name.endswith("cosign.pub")
    assert signer.fingerprint and signer.fingerprint.startswith("sha256:")
    assert check.summary().startswith("signed by key ")


def test_valid_keyless_signature(repo: Repo, repos, keys) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    repo.push.signatures(repo.digest, [(payload, s.keyless_annotations(payload))])
    check = verify(repo, keyless_trust(keys))
    assert check.signed, check.rejected
    [signer] = check.signers
    assert (signer.kind, signer.name, signer.issuer) == ("identity", SUBJECT, ISSUER)
    assert signer.signed_at is not None
    # An email SAN is an identity too.
    repo2 = repos()
    payload2 = simple_signing(repo2.bare, repo2.digest)
    ann = s.keyless_annotations(payload2, subject="release@acme.test")
    repo2.push.signatures(repo2.digest, [(payload2, ann)])
    assert verify(repo2, keyless_trust(keys, subject="*@acme.test")).signed


def test_wrong_key_is_not_trusted(repo: Repo, keys) -> None:
    payload = simple_signing(repo.bare, repo.digest)
    repo.push.signatures(repo.digest, [(payload, keyed(keys, payload, "other"))])
    check = verify(repo, key_trust(keys))
    assert not check.signed and check.found == 1
    assert check.rejected == ("signature 1: the signature does not verify with any trusted key",)
    # The same signature with its own key trusted does count: the test is about trust, not format.
    assert verify(repo, key_trust(keys, "other.pub")).signed


def test_signature_of_another_digest_replayed_is_rejected(repos, keys) -> None:
    victim, other = repos(), repos()
    other_digest = other.push.image("2", b"something else\n")
    payload = simple_signing(other.bare, other_digest)  # a genuine signature, of another image
    victim.push.signatures(victim.digest, [(payload, keyed(keys, payload))])
    check = verify(victim, key_trust(keys))
    assert not check.signed
    [reason] = check.rejected
    assert f"for another image ({other_digest}), not {victim.digest}" in reason


def test_tampered_payload_is_rejected(repo: Repo, keys) -> None:
    payload = simple_signing(repo.bare, repo.digest)
    ann = keyed(keys, payload)
    tampered = simple_signing(repo.bare, repo.digest, note="changed after signing")
    repo.push.signatures(repo.digest, [(tampered, ann)])
    check = verify(repo, key_trust(keys))
    assert not check.signed
    assert check.rejected == ("signature 1: the signature does not verify with any trusted key",)


def test_keyless_certificate_expired_at_integrated_time(repo: Repo, keys) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    # Fulcio certificates live ten minutes; Rekor logged this one an hour after it expired.
    ann = s.keyless_annotations(
        payload,
        not_before=s.now - dt.timedelta(hours=2),
        integrated=s.now - dt.timedelta(hours=1),
    )
    repo.push.signatures(repo.digest, [(payload, ann)])
    check = verify(repo, keyless_trust(keys))
    assert not check.signed
    [reason] = check.rejected
    assert "the signing certificate was not valid at the signing time" in reason


def test_keyless_wrong_identity_is_rejected(repo: Repo, keys) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    ann = s.keyless_annotations(payload, subject="https://github.com/mallory/fork/.github/x.yml")
    repo.push.signatures(repo.digest, [(payload, ann)])
    check = verify(repo, keyless_trust(keys))
    assert not check.signed
    [reason] = check.rejected
    assert "signed by https://github.com/mallory/fork/.github/x.yml" in reason
    assert "not a trusted identity" in reason
    # Right subject, another OIDC issuer: still not the identity asked for.
    ann = s.keyless_annotations(payload, issuer="https://accounts.evil.test")
    repo.push.signatures(repo.digest, [(payload, ann)])
    assert "issuer https://accounts.evil.test" in verify(repo, keyless_trust(keys)).rejected[0]


def test_keyless_needs_the_supplied_roots_and_rekor(repo: Repo, keys, tmp_path: Path) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    forged_rekor = ec.generate_private_key(ec.SECP256R1())
    ann = s.keyless_annotations(payload)
    ann["dev.sigstore.cosign/bundle"] = s.bundle(
        s.hashedrekord(payload, ecdsa_sign(forged_rekor, b"x"), s.leaf()[1]), rekor_key=forged_rekor
    )
    # A certificate chaining to another CA (its own chain annotation does not make it trusted).
    rogue = Sigstore(tmp_path)
    repo.push.signatures(
        repo.digest, [(payload, ann), (payload, rogue.keyless_annotations(payload))]
    )
    check = verify(repo, keyless_trust(keys))
    assert not check.signed
    assert check.rejected[0].endswith(
        "the Rekor SignedEntryTimestamp does not verify with the Rekor keys"
    )
    # The rogue's own Rekor key is not trusted either; with it trusted, the chain is what fails.
    assert "Rekor" in check.rejected[1]
    trust = load_trust(
        identities=[Identity(subject=SUBJECT, issuer=ISSUER)],
        roots=[str(s.root_pem)],
        rekor_keys=[str(s.rekor_pem), str(rogue.rekor_pem)],
    )
    assert (
        verify(repo, trust)
        .rejected[1]
        .endswith("the signing certificate does not chain to the trusted roots")
    )


def test_bundle_of_another_signature_is_rejected(repo: Repo, keys) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    good = s.keyless_annotations(payload)
    other = s.keyless_annotations(simple_signing(repo.bare, "sha256:" + "1" * 64))
    good["dev.sigstore.cosign/bundle"] = other["dev.sigstore.cosign/bundle"]
    repo.push.signatures(repo.digest, [(payload, good)])
    [reason] = verify(repo, keyless_trust(keys)).rejected
    assert reason.endswith("the Rekor entry is for another signature")


def test_missing_signature_is_unsigned(repo: Repo, keys) -> None:
    check = verify(repo, key_trust(keys))
    assert not check.signed and check.found == 0 and check.rejected == ()
    assert check.summary() == "not signed (no cosign signature stored for this digest)"


GARBAGE = [
    {"dev.cosignproject.cosign/signature": "%%% not base64 %%%"},
    {"dev.cosignproject.cosign/signature": ""},
    {},
    {"dev.cosignproject.cosign/signature": b64(b"x" * 64), "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    {"dev.cosignproject.cosign/signature": b64(b"x" * 64), "dev.sigstore.cosign/certificate": "x" * 100_000},
    {"dev.cosignproject.cosign/signature": b64(b"x" * 64), "dev.sigstore.cosign/certificate": "", "dev.sigstore.cosign/bundle": "{" * 100_000},
]  # fmt: skip


def test_garbage_annotations_give_one_line_reasons(repo: Repo, keys) -> None:
    s: Sigstore = keys["sigstore"]
    payload = simple_signing(repo.bare, repo.digest)
    layers = [(payload, dict(a)) for a in GARBAGE]
    # A real certificate, then a bundle that is deeply nested JSON, one without Payload, a body
    # that is not base64.
    _, cert = s.leaf()
    from tests.scanning.cosign_writer import pem_cert

    for bundle in (
        "[" * 50_000 + "]" * 50_000,
        "{}",
        json.dumps({"SignedEntryTimestamp": "@@", "Payload": {"body": 1}}),
    ):
        layers.append((payload, {"dev.cosignproject.cosign/signature": b64(b"y" * 70), "dev.sigstore.cosign/certificate": pem_cert(cert), "dev.sigstore.cosign/bundle": bundle}))  # fmt: skip
    layers.append((b"\xff\xfe not json", keyed(keys, b"\xff\xfe not json")))
    layers.append((b"[1, 2]", keyed(keys, b"[1, 2]")))
    repo.push.signatures(repo.digest, layers)
    check = verify(repo, keyless_trust(keys))
    assert not check.signed and check.found == len(layers)
    assert len(check.rejected) == len(layers)
    for line in check.rejected:
        assert "\n" not in line and len(line) < 400, line
    with_keys = SignatureTrust(keys=key_trust(keys).keys, identities=(), root=None)
    tail = verify(repo, with_keys).rejected[-2:]
    assert tail == (
        "signature 10: the signed payload is not JSON",
        "signature 11: the signed payload is not a JSON object",
    )


def test_signature_manifest_that_is_not_json_or_huge(repo: Repo, keys) -> None:
    stem = repo.digest.replace(":", "-")
    put = repo.push.http.put(
        f"{repo.push.base}/v2/{repo.name}/manifests/{stem}.sig",
        content=json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {},
                "layers": "nope",
            }
        ).encode(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    if put.status_code == 201:
        check = verify(repo, key_trust(keys))
        assert not check.signed and check.rejected
    payload = simple_signing(repo.bare, repo.digest)
    many = [(payload, keyed(keys, payload))] * 40
    repo.push.signatures(repo.digest, many)
    check = verify(repo, key_trust(keys))
    assert len(check.signers) == 1  # one key: one signer, read from the first 32 layers only
    assert check.rejected == (f"{stem}.sig: 8 signatures past the first 32 ignored",)


def test_attestations_keyed_and_keyless(repo: Repo, keys) -> None:
    s: Sigstore = keys["sigstore"]
    stmt = statement(repo.bare, repo.digest)
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": b64(stmt),
        "signatures": [{"keyid": "", "sig": b64(ecdsa_sign(keys["signer"], pae("application/vnd.in-toto+json", stmt)))}],
    }  # fmt: skip
    leaf_key, cert = s.leaf()
    from tests.scanning.cosign_writer import pem_cert

    keyless_sig = ecdsa_sign(leaf_key, pae("application/vnd.in-toto+json", stmt))
    keyless_env = dict(envelope, signatures=[{"keyid": "", "sig": b64(keyless_sig)}])
    keyless_ann = {
        "dev.cosignproject.cosign/signature": "",
        "dev.sigstore.cosign/certificate": pem_cert(cert),
        "dev.sigstore.cosign/chain": pem_cert(s.inter) + pem_cert(s.root),
        "dev.sigstore.cosign/bundle": s.bundle(s.intoto(stmt, cert)),
    }
    other = statement(repo.bare, "sha256:" + "2" * 64)
    other_env = dict(envelope, payload=b64(other), signatures=[{"sig": b64(ecdsa_sign(keys["signer"], pae("application/vnd.in-toto+json", other)))}])  # fmt: skip
    repo.push.signatures(
        repo.digest,
        [
            (json.dumps(envelope).encode(), {"dev.cosignproject.cosign/signature": ""}),
            (json.dumps(keyless_env).encode(), keyless_ann),
            (json.dumps(other_env).encode(), {"dev.cosignproject.cosign/signature": ""}),
        ],
        suffix="att",
        media_type=DSSE,
    )
    trust = SignatureTrust(
        keys=key_trust(keys).keys,
        identities=keyless_trust(keys).identities,
        root=keyless_trust(keys).root,
    )
    check = verify(repo, trust)
    assert not check.signed  # attestations are not signatures of the image
    assert [(a.predicate_type, a.signer.kind) for a in check.attestations] == [
        ("https://slsa.dev/provenance/v1", "key"),
        ("https://slsa.dev/provenance/v1", "identity"),
    ]
    assert check.rejected == (
        f"attestation 3: the attestation is about another subject, not {repo.digest}",
    )


# -- admission: signedBy ------------------------------------------------------------------------------
def _review(image: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "operation": "CREATE",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "web", "namespace": "prod"},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        }
    ).encode()


def test_admission_signed_by(repos, keys, tmp_path: Path) -> None:
    from stockade.admission.policy import parse_policy
    from stockade.admission.review import answer, parse
    from stockade.admission.vulns import CachedVulnSource
    from stockade.scanning.admission_source import StoreVulnSource
    from stockade.scanning.pipeline import ImageOptions
    from stockade.store import open_store

    s: Sigstore = keys["sigstore"]
    keyed_repo, keyless_repo, replayed, unsigned = repos(), repos(), repos(), repos()
    payload = simple_signing(keyed_repo.bare, keyed_repo.digest)
    keyed_repo.push.signatures(keyed_repo.digest, [(payload, keyed(keys, payload))])
    payload = simple_signing(keyless_repo.bare, keyless_repo.digest)
    keyless_repo.push.signatures(keyless_repo.digest, [(payload, s.keyless_annotations(payload))])
    # keyed_repo's genuine signature copied under replayed's digest
    replayed.push.signatures(replayed.digest, [(payload, keyed(keys, payload))])
    policy = parse_policy(
        f"""
apiVersion: stockade.dev/v1
kind: AdmissionPolicy
spec:
  mode: protect
  failurePolicy: fail
  rules:
    - name: signed-images
      criteria:
        signedBy:
          keys: [{keys["dir"]}/cosign.pub]
          identities:
            - {{subject: "https://github.com/acme/*", issuer: "{ISSUER}"}}
          trustRoot:
            fulcioRoots: [{s.root_pem}]
            fulcioIntermediates: [{s.inter_pem}]
            rekorKeys: [{s.rekor_pem}]
""",
        name="policy.yaml",
    )
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    source = CachedVulnSource(
        StoreVulnSource(store, scan_on_demand=False, image_options=ImageOptions(insecure=True))
    )

    def decide(repo: Repo) -> dict:
        return answer(parse(_review(repo.ref)), policy, source).response["response"]

    assert decide(keyed_repo)["allowed"] is True
    assert decide(keyless_repo)["allowed"] is True
    denied = decide(replayed)
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert message.startswith("denied by Stockade: rule 'signed-images': image ")
    assert f"is not signed by key {keys['dir']}/cosign.pub or https://github.com/acme/*" in message
    assert "the signature is for another image" in message
    denied = decide(unsigned)
    assert denied["allowed"] is False
    assert "not signed (no cosign signature stored for this digest)" in denied["status"]["message"]
    # The registry cannot be reached: the failure policy decides (fail: deny), saying why.
    gone = answer(parse(_review("127.0.0.1:1/sig/x:1")), policy, source).response["response"]
    assert gone["allowed"] is False, gone
    assert (
        "could not decide (signature verification for 127.0.0.1:1/sig/x:1 failed"
        in (gone["status"]["message"])
    )


def test_signed_by_policy_errors_are_config_errors() -> None:
    from stockade.admission.policy import parse_policy
    from stockade.model.errors import ConfigError

    head = "apiVersion: stockade.dev/v1\nkind: AdmissionPolicy\nspec:\n  rules:\n    - name: s\n"
    for criteria, wanted in (
        ("{signedBy: true}", "signedBy needs keys or identities"),
        ("{signedBy: {identities: [{subject: a, issuer: b}]}}", "need a trustRoot"),
        ("{signedBy: {keys: [k], extra: 1}}", "extra"),
    ):
        with pytest.raises(ConfigError, match=wanted):
            parse_policy(head + f"      criteria: {criteria}\n", name="policy.yaml")


# -- the scan fact ------------------------------------------------------------------------------------
def test_scan_reports_signatures_and_exits_1_when_unsigned(repos, keys, tmp_path: Path) -> None:
    from tests.scanning.scan_cli_support import make_db, run

    db = make_db(tmp_path / "db.sqlite")
    signed, unsigned = repos(), repos()
    payload = simple_signing(signed.bare, signed.digest)
    signed.push.signatures(signed.digest, [(payload, keyed(keys, payload))])
    key = str(Path(str(keys["dir"])) / "cosign.pub")
    common = ("--insecure", "--db", db, "--allow-unchecked", "--verify-key", key)

    out = run("scan", "image", signed.ref, *common, "--format", "json")
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)["signatures"]
    assert facts["signed"] is True and facts["digest"] == signed.digest
    assert facts["verified_against"] == f"key {key}"
    assert facts["signers"][0]["kind"] == "key" and facts["signers"][0]["name"] == key

    out = run("scan", "image", unsigned.ref, *common)
    assert out.returncode == 1, out.stderr
    assert "signatures: not signed (no cosign signature stored for this digest)" in out.stdout

    # A scan without --verify-* says nothing about signatures and keeps its exit code.
    out = run("scan", "image", unsigned.ref, "--insecure", "--db", db, "--format", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["signatures"] is None


def test_scan_signature_options_errors_are_one_line(repo: Repo, keys, tmp_path: Path) -> None:
    from tests.scanning.scan_cli_support import run

    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    cases = (
        (("--verify-key", str(garbage)), f"stockade: error: {garbage}: not a PEM public key"),
        (("--verify-key", str(tmp_path / "nowhere.pub")), "nowhere.pub: cannot read"),
        (("--verify-identity", "x@y"), "--verify-identity and --verify-issuer go together"),
        (
            ("--verify-identity", "x@y", "--verify-issuer", "https://i"),
            "a keyless trust root needs Fulcio root certificates and a Rekor key",
        ),
    )
    for options, wanted in cases:
        out = run("scan", "image", repo.ref, "--insecure", *options)
        assert out.returncode == 2, (options, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and wanted in lines[0], out.stderr
    key = str(Path(str(keys["dir"])) / "cosign.pub")
    out = run("scan", "image", f"dir:{tmp_path}", "--verify-key", key)
    assert out.returncode == 2 and "for registry images only" in out.stderr
    assert "Traceback" not in out.stderr


def test_pinned_digests_are_verified_not_the_tag_again(repo: Repo, keys) -> None:
    """The scan verifies the digests it read: a tag moved afterwards to an unsigned image does not
    change the answer, and a moved tag can never lend its signature to the image scanned."""
    payload = simple_signing(repo.bare, repo.digest)
    repo.push.signatures(repo.digest, [(payload, keyed(keys, payload))])
    other = repo.push.image("1", b"an unsigned image now under the same tag\n")  # the tag moves
    assert other != repo.digest

    pinned = verify_reference(repo.ref, key_trust(keys), insecure=True, digests=(repo.digest,))
    assert pinned.signed and pinned.digest == repo.digest
    moved = verify(repo, key_trust(keys))  # resolving the tag now finds the unsigned image
    assert not moved.signed and moved.digest == other


def test_scan_pins_the_index_and_falls_back_to_the_platform_manifest(
    repo: Repo, keys, tmp_path: Path
) -> None:
    """cosign signs the digest it is given: a multi-platform index's, or (with --recursive or by
    digest) a platform manifest's. The scan checks the index first, then the manifest it chose."""
    from tests.scanning.scan_cli_support import make_db, run

    manifest = repo.push.http.get(
        f"{repo.push.base}/v2/{repo.name}/manifests/{repo.digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": repo.digest,
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    index_digest = repo.push.manifest("multi", index)
    payload = simple_signing(repo.bare, repo.digest)  # only the platform manifest is signed
    repo.push.signatures(repo.digest, [(payload, keyed(keys, payload))])
    key = str(Path(str(keys["dir"])) / "cosign.pub")
    db = make_db(tmp_path / "db.sqlite")
    out = run(
        "scan", "image", f"{repo.bare}:multi", "--insecure", "--db", db, "--allow-unchecked",
        "--verify-key", key, "--format", "json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)["signatures"]
    assert facts["signed"] is True and facts["digest"] == repo.digest

    payload = simple_signing(repo.bare, index_digest)  # now the index is signed too: it comes first
    repo.push.signatures(index_digest, [(payload, keyed(keys, payload))])
    out = run(
        "scan", "image", f"{repo.bare}:multi", "--insecure", "--db", db, "--allow-unchecked",
        "--verify-key", key, "--format", "json",
    )  # fmt: skip
    assert json.loads(out.stdout)["signatures"]["digest"] == index_digest
