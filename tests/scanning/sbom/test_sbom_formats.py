"""SBOM writers validated against the official schemas (CycloneDX 1.5 as shipped by
cyclonedx-python-lib, SPDX 2.3 vendored in schemas/), stable ids, and readers round-tripping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockade.model.errors import InputError
from stockade.scanning import sbom
from stockade.scanning.interface import Inventory, Package
from stockade.scanning.sbom import cyclonedx, spdx
from tests.conftest import require
from tests.scanning.catalogers.catalog_inputs import deb_control, deb_source_version, syft_json

SCHEMAS = Path(__file__).parent / "schemas"


def _cdx_validator():
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    try:
        from cyclonedx.schema import _res
    except ImportError:
        require(False, "cyclonedx-python-lib (ships the CycloneDX schemas) is not installed")
    res = Path(_res.__file__).parent
    schema = json.loads((res / "bom-1.5.SNAPSHOT.schema.json").read_text())
    resources = []
    for file in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"):
        contents = json.loads((res / file).read_text())
        resource = referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT7
        )
        resources.append((file, resource))
        resources.append((f"http://cyclonedx.org/schema/{file}", resource))
    registry = referencing.Registry().with_resources(resources)
    return jsonschema.Draft7Validator(
        schema, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def _spdx_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMAS / "spdx-2.3.schema.json").read_text())
    return jsonschema.Draft201909Validator(schema)


def errors(validator, doc: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ][:10]


def test_cyclonedx_is_valid(inventory: Inventory) -> None:
    doc = json.loads(sbom.write(inventory, "cyclonedx"))
    assert errors(_cdx_validator(), doc) == []
    assert doc["specVersion"] == "1.5"
    comps = {c["bom-ref"]: c for c in doc["components"]}
    assert len(comps) == len(inventory.packages) + 1  # + the operating system
    assert any(c["type"] == "operating-system" and c["name"] == "debian" for c in comps.values())
    zlib = next(c for c in comps.values() if c["name"] == "zlib1g")
    assert zlib["purl"].endswith("distro=debian-12&upstream=zlib")
    assert {"license": {"id": "Zlib"}} in zlib["licenses"]
    assert doc["metadata"]["component"]["version"] == "sha256:" + "ab" * 32


def test_cyclonedx_validator_catches_breakage(inventory: Inventory) -> None:
    doc = json.loads(sbom.write(inventory, "cyclonedx"))
    doc["components"][0]["type"] = "not-a-type"
    del doc["components"][1]["name"]
    assert len(errors(_cdx_validator(), doc)) >= 2


def test_spdx_is_valid(inventory: Inventory) -> None:
    doc = json.loads(sbom.write(inventory, "spdx"))
    assert errors(_spdx_validator(), doc) == []
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) == len(inventory.packages) + 2  # + image + distro
    rels = {(r["spdxElementId"], r["relationshipType"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES") in rels
    declared = {p["name"]: p["licenseDeclared"] for p in doc["packages"]}
    assert declared["zlib1g"] == "Zlib"
    # non-SPDX license names become LicenseRefs with their text kept
    refs = {e["licenseId"]: e["extractedText"] for e in doc.get("hasExtractedLicensingInfos", [])}
    for value in declared.values():
        for token in value.replace("(", " ").replace(")", " ").split():
            if token.startswith("LicenseRef-"):
                assert token in refs


def test_spdx_validator_catches_breakage(inventory: Inventory) -> None:
    doc = json.loads(sbom.write(inventory, "spdx"))
    doc["packages"][1]["SPDXID"] = "bad id"
    doc["creationInfo"]["created"] = "yesterday"
    assert len(errors(_spdx_validator(), doc)) >= 2


def test_ids_are_stable_across_runs(inventory: Inventory) -> None:
    a, b = (
        json.loads(sbom.write(inventory, "cyclonedx")),
        json.loads(sbom.write(inventory, "cyclonedx")),
    )
    assert [c["bom-ref"] for c in a["components"]] == [c["bom-ref"] for c in b["components"]]
    assert a["serialNumber"] != b["serialNumber"]  # a new BOM each time, as the spec asks
    s1, s2 = json.loads(sbom.write(inventory, "spdx")), json.loads(sbom.write(inventory, "spdx"))
    assert [p["SPDXID"] for p in s1["packages"]] == [p["SPDXID"] for p in s2["packages"]]


def _key(inv: Inventory) -> set[tuple[str, str, str, str]]:
    return {(p.type, p.name, p.version, p.purl) for p in inv.packages}


@pytest.mark.parametrize("fmt", ["json", "cyclonedx", "spdx"])
def test_round_trip(inventory: Inventory, fmt: str) -> None:
    back = sbom.read(sbom.write(inventory, fmt).encode(), f"x.{fmt}")
    assert _key(back) == _key(inventory)
    assert back.distro is not None and back.distro.id == "debian"
    by_name = {p.name: p for p in back.packages}
    assert (by_name["libbz2-1.0"].source_name, by_name["libbz2-1.0"].source_version) == (
        "bzip2",
        deb_source_version("libbz2-1.0"),
    )
    assert by_name["zlib1g"].licenses == ("Zlib",)
    if fmt == "json":
        assert back == inventory


def test_reads_syft_documents(tmp_path: Path) -> None:
    require(__import__("shutil").which("syft") is not None, "syft is not installed")
    from tests.scanning.catalogers import catalog_inputs

    root = catalog_inputs.sample_root()
    syft_doc = syft_json(f"dir:{root}")
    inv = sbom.read(json.dumps(syft_doc).encode(), "syft.json")
    assert {(p.type, p.name) for p in inv.packages} >= {
        ("deb", "zlib1g"),
        ("rpm", "stockade-tiny"),
        ("npm", "left-pad"),
    }
    assert inv.distro is not None and inv.distro.id == "debian"
    zlib = next(p for p in inv.packages if p.name == "zlib1g")
    assert zlib.source_name == "zlib"
    # and syft's CycloneDX and SPDX output (from the same syft run) through our readers
    for fmt in ("cyclonedx-json", "spdx-json"):
        got = sbom.read(catalog_inputs.syft_outputs(f"dir:{root}")[fmt], fmt)
        names = {(p.type, p.name, p.version) for p in got.packages}
        assert ("deb", "zlib1g", deb_control("zlib1g", "Version")) in names, fmt
        assert ("python", "six", "1.16.0") in names, fmt
        assert ("go-module", "example.com/greet", "v1.4.2") in names, fmt
        assert ("java-archive", "guava", "31.1-jre") in names, fmt
        rpm = next(p for p in got.packages if p.name == "stockade-tiny")
        assert rpm.source_name == "stockade-tiny", fmt


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"bomFormat": "CycloneDX", "components": 5}',
        b'{"spdxVersion": "SPDX-2.3", "packages": [1, {"name": 2}]}',
        b'{"hello": 1}',
        b"\xff\xfe",
    ],
)
def test_bad_documents_are_input_errors(data: bytes) -> None:
    try:
        inv = sbom.read(data, "bad.json")
    except InputError as exc:
        assert str(exc).startswith("bad.json: ")
        assert "\n" not in str(exc)
    else:
        assert inv.packages == ()


def test_license_expression_forms() -> None:
    pkgs = (
        Package(
            type="rpm", name="a", version="1", licenses=("MIT AND (Apache-2.0 OR BSD-3-Clause)",)
        ),
        Package(
            type="deb", name="b", version="1", licenses=("GPL-2+", "BSD-3-clause", "public-domain")
        ),
        Package(type="npm", name="c", version="1", licenses=("Some License v2 OR whatever",)),
    )
    inv = Inventory(source="t", packages=pkgs)
    cdx = cyclonedx.to_dict(inv)
    lic = {c["name"]: c.get("licenses") for c in cdx["components"]}
    assert lic["a"] == [{"expression": "MIT AND (Apache-2.0 OR BSD-3-Clause)"}]
    assert lic["b"][1] == {"license": {"id": "BSD-3-Clause"}}
    assert lic["c"] == [{"license": {"name": "Some License v2 OR whatever"}}]
    doc = spdx.to_dict(inv)
    declared = {p["name"]: p["licenseDeclared"] for p in doc["packages"]}
    assert declared["a"] == "MIT AND (Apache-2.0 OR BSD-3-Clause)"
    assert (
        declared["b"].startswith("GPL-2.0+ AND BSD-3-Clause AND LicenseRef-public-domain-")
        or "LicenseRef-" in declared["b"]
    )
    assert errors(_spdx_validator(), doc) == [] and errors(_cdx_validator(), cdx) == []


def test_spdx_passes_the_spdx_tools_validator(inventory: Inventory, tmp_path: Path) -> None:
    """Beyond the schema: spdx-tools' semantic validation (license expressions, LicenseRefs
    declared, relationship targets existing, SPDX id syntax, namespace URI)."""
    import importlib.util

    require(importlib.util.find_spec("spdx_tools") is not None, "spdx-tools is not installed")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "image.spdx.json"
    path.write_text(sbom.write(inventory, "spdx"))
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert [m.validation_message for m in messages] == []
    # and the checker does catch broken documents: a bad expression fails parsing, a dangling
    # relationship fails validation
    from spdx_tools.spdx.parser.error import SPDXParsingError

    doc = json.loads(path.read_text())
    doc["packages"][1]["licenseDeclared"] = "MIT AND AND"
    bad = tmp_path / "bad.spdx.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SPDXParsingError):
        parse_file(str(bad))
    doc = json.loads(path.read_text())
    doc["relationships"].append(
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-nope",
        }
    )
    bad.write_text(json.dumps(doc))
    assert validate_full_spdx_document(parse_file(str(bad)))


def _spdx_with(purls: list[str]) -> bytes:
    """A minimal SPDX 2.3 document (no operating-system element) with one package per purl."""
    packages = [
        {
            "SPDXID": f"SPDXRef-Package-{i}",
            "name": f"p{i}",
            "versionInfo": "1.0-1",
            "downloadLocation": "NOASSERTION",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p,
                }
            ],
        }
        for i, p in enumerate(purls)
    ]
    return json.dumps({"spdxVersion": "SPDX-2.3", "name": "img", "packages": packages}).encode()


def test_distro_from_os_purls_when_the_document_names_none() -> None:
    """syft's SPDX has no operating-system element: without one the distro comes from the OS
    purls' ``distro`` qualifier, only when they all agree (never from language purls)."""
    rancher = "pkg:rpm/sle-micro-rancher/bash@4.4-1.1?arch=x86_64&distro=sle-micro-rancher-5.4"
    inv = sbom.read(_spdx_with([rancher, "pkg:pypi/six@1.16.0"]), "x.spdx.json")
    assert inv.distro is not None
    assert (inv.distro.id, inv.distro.version_id) == ("sle-micro-rancher", "5.4")
    mixed = [rancher, "pkg:deb/debian/bash@5.2-1?distro=debian-12"]
    assert sbom.read(_spdx_with(mixed), "x").distro is None  # they disagree: no guess
    assert sbom.read(_spdx_with(["pkg:pypi/six@1.16.0?distro=ubuntu-22.04"]), "x").distro is None
    assert sbom.read(_spdx_with(["pkg:deb/debian/bash@5.2-1"]), "x").distro is None
