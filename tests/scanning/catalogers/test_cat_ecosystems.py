"""RubyGems, Composer, Cargo and .NET catalogers on real lock files, installed metadata and
binaries (the samples and their provenance: tests/scanning/data/ecosystems/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from stockade.scanning.catalogers import default_catalogers, finalize
from stockade.scanning.catalogers.composer import ComposerCataloger
from stockade.scanning.catalogers.dotnet import DotnetDepsCataloger
from stockade.scanning.catalogers.ruby import RubyGemsCataloger
from stockade.scanning.catalogers.rust import RustCataloger
from stockade.scanning.interface import FileEntry, Inventory, Package
from stockade.scanning.sbom import write
from tests.support import require

DATA = Path(__file__).resolve().parents[1] / "data" / "ecosystems"


def entry(path: str, data: bytes, mode: int = 0o100644) -> FileEntry:
    return FileEntry(path=path, mode=mode, size=len(data), data=data)


def sample(name: str, path: str) -> FileEntry:
    return entry(path, (DATA / name).read_bytes())


def by_name(pkgs: list[Package]) -> dict[str, Package]:
    return {p.name: p for p in pkgs}


# --- RubyGems -----------------------------------------------------------------------------


def test_gemfile_lock_gem_section_not_the_local_path_gem() -> None:
    cat = RubyGemsCataloger()
    assert cat.wants("/app/Gemfile.lock", 0o100644, 844)
    got = by_name(cat.catalog([sample("Gemfile.lock", "/app/Gemfile.lock")]))
    assert len(got) == 14
    assert "balance" not in got  # the PATH gem is the application's own source
    assert got["nokogiri"].version == "1.5.5"
    assert got["mechanize"].purl == "pkg:gem/mechanize@2.5.1"
    assert got["net-http-digest_auth"].purl == "pkg:gem/net-http-digest_auth@1.2.1"
    assert got["unf_ext"].meta("gem-source") == "gem"


def test_gemfile_lock_platform_and_git_gems() -> None:
    lock = (
        b"GIT\n  remote: https://github.com/rails/rails.git\n  revision: abc\n  specs:\n"
        b"    rails (7.1.0.alpha)\n      activesupport (= 7.1.0.alpha)\n\n"
        b"GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.13.10-x86_64-linux)\n"
        b"      racc (~> 1.4)\n    racc (1.6.2)\n\nPLATFORMS\n  x86_64-linux\n"
    )
    got = by_name(RubyGemsCataloger().catalog([entry("/srv/Gemfile.lock", lock)]))
    assert got["nokogiri"].version == "1.13.10"
    assert got["nokogiri"].purl == "pkg:gem/nokogiri@1.13.10?platform=x86_64-linux"
    assert (got["rails"].version, got["rails"].meta("gem-source")) == ("7.1.0.alpha", "git")
    assert set(got) == {"rails", "nokogiri", "racc"}  # dependency lines are not gems


def test_installed_gemspec() -> None:
    path = "/usr/local/bundle/specifications/rack-2.2.3.gemspec"
    cat = RubyGemsCataloger()
    assert cat.wants(path, 0o100644, 100) and not cat.wants("/src/rack.gemspec", 0o100644, 100)
    [gem] = cat.catalog([sample("specifications/rack-2.2.3.gemspec", path)])
    assert (gem.name, gem.version, gem.licenses, gem.purl) == (
        "rack",
        "2.2.3",
        ("MIT",),
        "pkg:gem/rack@2.2.3",
    )


# --- Composer -----------------------------------------------------------------------------


def test_composer_lock() -> None:
    doc = json.loads((DATA / "composer.lock").read_text())
    got = by_name(ComposerCataloger().catalog([sample("composer.lock", "/var/www/composer.lock")]))
    assert set(got) == {p["name"] for p in doc["packages"] + doc.get("packages-dev", [])}
    assert got["phpixie/core"].purl == "pkg:composer/phpixie/core@dev-master"
    assert got["phpixie/core"].licenses == ("BSD",)


def test_installed_json_composer_1_and_2() -> None:
    cat = ComposerCataloger()
    path = "/var/www/vendor/composer/installed.json"
    assert cat.wants(path, 0o100644, 10)
    v1 = by_name(cat.catalog([sample("installed-v1.json", path)]))
    assert set(v1) == {p["name"] for p in json.loads((DATA / "installed-v1.json").read_text())}
    v2_doc = json.loads((DATA / "installed-v2.json").read_text())
    v2 = by_name(cat.catalog([sample("installed-v2.json", path)]))
    assert {(n, p.version) for n, p in v2.items()} == {
        (p["name"], p["version"]) for p in v2_doc["packages"]
    }
    assert v2["nikic/php-parser"].purl == "pkg:composer/nikic/php-parser@v4.15.4"
    assert v2["myclabs/deep-copy"].licenses == ("MIT",)


def test_composer_dev_packages_marked() -> None:
    doc = {
        "packages": [{"name": "a/run", "version": "1.0.0"}, {"name": "a/test", "version": "2.0"}],
        "dev": True,
        "dev-package-names": ["a/test"],
    }
    got = by_name(
        ComposerCataloger().catalog(
            [entry("/x/vendor/composer/installed.json", json.dumps(doc).encode())]
        )
    )
    assert got["a/test"].meta("dev") == "true" and got["a/run"].meta("dev") is None


# --- Cargo --------------------------------------------------------------------------------


def test_cargo_lock_registry_crates_only() -> None:
    found = RustCataloger().catalog([sample("Cargo.lock", "/src/app/Cargo.lock")])
    got = by_name(found)
    # the workspace's own crates (no source) are not reported; jellyfin-rpc is there twice, as a
    # workspace member and as the published crate the CLI depends on: only the latter counts
    assert "jellyfin-rpc-cli" not in got
    assert [p.meta("cargo-source") for p in found if p.name == "jellyfin-rpc"] == [
        "registry+https://github.com/rust-lang/crates.io-index"
    ]
    assert len(found) == 14
    assert got["tokio"].version == "1.47.1"
    assert got["tokio"].purl == "pkg:cargo/tokio@1.47.1"
    assert (
        got["tokio"].meta("cargo-source") == "registry+https://github.com/rust-lang/crates.io-index"
    )


def _auditable_binary(tmp: Path, doc: object, raw: bytes | None = None) -> bytes:
    """A real ELF executable (gcc) with a ``.dep-v0`` section added by objcopy, its content
    as cargo-auditable writes it: zlib-compressed JSON."""
    for tool in ("gcc", "objcopy"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    (tmp / "main.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-o", str(tmp / "app"), str(tmp / "main.c")], check=True)
    (tmp / "dep").write_bytes(raw if raw is not None else zlib.compress(json.dumps(doc).encode()))
    subprocess.run(
        ["objcopy", "--add-section", f".dep-v0={tmp / 'dep'}", str(tmp / "app"), str(tmp / "app2")],
        check=True,
    )
    return (tmp / "app2").read_bytes()


AUDIT = {
    "packages": [
        {
            "name": "myapp",
            "version": "0.1.0",
            "source": "local",
            "dependencies": [1, 2],
            "root": True,
        },
        {"name": "smallvec", "version": "1.6.0", "source": "crates.io"},
        {"name": "time", "version": "0.1.43", "source": "crates.io", "dependencies": [3]},
        {"name": "cc", "version": "1.0.73", "source": "crates.io", "kind": "build"},
    ]
}


def test_cargo_auditable_section(tmp_path: Path) -> None:
    data = _auditable_binary(tmp_path, AUDIT)
    got = by_name(RustCataloger().catalog([entry("/usr/bin/myapp", data, 0o100755)]))
    assert set(got) == {"smallvec", "time"}  # not the binary's own crate, not build-only crates
    assert got["time"].purl == "pkg:cargo/time@0.1.43"
    assert got["time"].meta("evidence") == "cargo-auditable"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not zlib at all", "not zlib"),
        (zlib.compress(b"{broken json"), ""),
        (zlib.compress(b"\0" * (40 * 1024 * 1024)), "inflates past"),
    ],
)
def test_cargo_auditable_hostile_sections(tmp_path: Path, raw: bytes, reason: str) -> None:
    data = _auditable_binary(tmp_path, None, raw)
    pkgs = RustCataloger().catalog([entry("/usr/bin/evil", data, 0o100755)])
    inv = finalize(Inventory(source="t", packages=tuple(pkgs)))
    assert inv.packages == ()
    assert len(inv.skipped) == 1 and "/usr/bin/evil" in inv.skipped[0] and reason in inv.skipped[0]


def test_broken_cargo_lock_is_a_skipped_result() -> None:
    pkgs = RustCataloger().catalog([entry("/a/Cargo.lock", b"[[package]\nname = ")])
    assert [p.type for p in pkgs] == ["skipped"]


# --- .NET ---------------------------------------------------------------------------------


def test_deps_json_packages_not_projects() -> None:
    cat = DotnetDepsCataloger()
    path = "/app/MyApp.deps.json"
    assert cat.wants(path, 0o100644, 100)
    got = by_name(cat.catalog([sample("deps.json", path)]))
    assert set(got) == {"System.Banana", "System.Foo"}  # MyApp is the project itself
    assert got["System.Banana"].purl == "pkg:nuget/System.Banana@1.0.0"
    assert got["System.Foo"].meta("path") == "system.foo/1.0.0"


def test_deps_json_only_the_runtime_target() -> None:
    doc = {
        "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/linux-x64"},
        "targets": {
            ".NETCoreApp,Version=v8.0": {"Compile.Only/1.0.0": {}, "Newtonsoft.Json/13.0.1": {}},
            ".NETCoreApp,Version=v8.0/linux-x64": {"Newtonsoft.Json/13.0.1": {}},
        },
        "libraries": {
            "Compile.Only/1.0.0": {"type": "package"},
            "Newtonsoft.Json/13.0.1": {"type": "package"},
        },
    }
    got = DotnetDepsCataloger().catalog([entry("/a/x.deps.json", json.dumps(doc).encode())])
    assert [(p.name, p.version) for p in got] == [("Newtonsoft.Json", "13.0.1")]


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[]", b'{"libraries": []}', b'{"libraries": {"x": 1}}']
)
def test_hostile_json_files_never_raise(data: bytes) -> None:
    for cat, path in (
        (DotnetDepsCataloger(), "/a/x.deps.json"),
        (ComposerCataloger(), "/a/composer.lock"),
    ):
        for pkg in cat.catalog([entry(path, data)]):
            assert pkg.type == "skipped"


# --- all together, in SBOMs ---------------------------------------------------------------


def test_default_catalogers_and_sbom_formats() -> None:
    files = [
        sample("Gemfile.lock", "/app/Gemfile.lock"),
        sample("installed-v2.json", "/app/vendor/composer/installed.json"),
        sample("Cargo.lock", "/app/Cargo.lock"),
        sample("deps.json", "/app/MyApp.deps.json"),
    ]
    pkgs: list[Package] = []
    for cat in default_catalogers():
        pkgs.extend(cat.catalog([f for f in files if cat.wants(f.path, f.mode, f.size)]))
    inv = finalize(Inventory(source="dir:/", packages=tuple(pkgs)))
    assert {p.type for p in inv.packages} == {"gem", "php-composer", "rust-crate", "dotnet"}
    cdx = json.loads(write(inv, "cyclonedx"))
    purls = {c.get("purl") for c in cdx["components"]}
    assert "pkg:cargo/tokio@1.47.1" in purls and "pkg:nuget/System.Foo@1.0.0" in purls
    spdx = json.loads(write(inv, "spdx"))
    refs = {
        r["referenceLocator"]
        for p in spdx["packages"]
        for r in p.get("externalRefs", [])
        if r.get("referenceType") == "purl"
    }
    assert "pkg:gem/rack@2.2.3" not in refs and "pkg:gem/nokogiri@1.5.5" in refs
    assert "pkg:composer/myclabs/deep-copy@1.11.1" in refs
