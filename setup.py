"""Build of the compiled parts (everything else is in pyproject.toml).

The enforcer's NFQUEUE loop in C (src/stockade/firewall/enforce/fastpath.c) is built through cffi
when a C compiler and the Python headers are there; without them the install goes on and the
enforcer uses its pure-Python loop (it logs which one runs). The same for the sensor's capture-file
path (src/stockade/network/capture/pcapfast.c): without it ``sensor --pcap`` reads in Python; and
for the DLP engine's digit-run prefilters (src/stockade/network/dlp/runscan.c): without it
Hyperscan scans them. The enforcer's tc classifier (src/stockade/firewall/enforce/clean.bpf.c) is
built with clang (-target bpf, libbpf-dev's headers) when clang is there; without it the enforcer
builds it on first use if it can, else every inspected segment waits for it as before."""

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile of a compiled part is a warning, not a failed install."""

    def run(self) -> None:
        for ext in self.extensions:
            ext.optional = True
        super().run()
        self._classifier()

    def _classifier(self) -> None:
        import importlib.util
        import subprocess
        import sys
        from pathlib import Path

        spec = importlib.util.spec_from_file_location(
            "clean_build", "src/stockade/firewall/enforce/clean_build.py"
        )
        assert spec is not None and spec.loader is not None
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
        src = Path("src/stockade/firewall/enforce/clean.bpf.c")
        target = Path(self.build_lib) / "stockade/firewall/enforce/clean.bpf.o"
        if self.inplace:
            target = src.with_suffix(".o")
        clang = build.clang()
        if clang is None:
            print("warning: no clang: the enforcer's classifier is not built", file=sys.stderr)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if subprocess.run(build.command(clang, target, src), check=False).returncode != 0:
            print("warning: the enforcer's classifier did not build", file=sys.stderr)


setup(
    cffi_modules=[
        "src/stockade/firewall/enforce/fastpath_build.py:ffibuilder",
        "src/stockade/network/capture/pcapfast_build.py:ffibuilder",
        "src/stockade/network/dlp/runscan_build.py:ffibuilder",
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
