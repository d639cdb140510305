"""Build of the compiled parts (everything else is in pyproject.toml).

The enforcer's NFQUEUE loop in C (src/stockade/firewall/enforce/fastpath.c) is built through cffi
when a C compiler and the Python headers are there; without them the install goes on and the
enforcer uses its pure-Python loop (it logs which one runs). The same for the sensor's capture-file
path (src/stockade/network/capture/pcapfast.c): without it ``sensor --pcap`` reads in Python; and
for the DLP engine's digit-run prefilters (src/stockade/network/dlp/runscan.c): without it
Hyperscan scans them."""

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile of a compiled part is a warning, not a failed install."""

    def run(self) -> None:
        for ext in self.extensions:
            ext.optional = True
        super().run()


setup(
    cffi_modules=[
        "src/stockade/firewall/enforce/fastpath_build.py:ffibuilder",
        "src/stockade/network/capture/pcapfast_build.py:ffibuilder",
        "src/stockade/network/dlp/runscan_build.py:ffibuilder",
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
