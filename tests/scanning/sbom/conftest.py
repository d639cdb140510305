"""Fixtures for the SBOM tests: the cataloged sample root as an Inventory with image facts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.conftest import require
from tests.scanning.catalogers import catalog_inputs

from stockade.scanning.interface import ImageInfo, Inventory, LayerInfo


@pytest.fixture(scope="session")
def inventory() -> Inventory:
    missing = catalog_inputs.missing_tools()
    require(not missing, f"tools to build the sample root are missing: {', '.join(missing)}")
    inv = catalog_inputs.catalog_tree(catalog_inputs.sample_root())
    image = ImageInfo(
        reference="docker-archive:/tmp/sample.tar",
        name="localhost:5000/stockade/sample",
        tag="1.0",
        manifest_digest="sha256:" + "ab" * 32,
        config_digest="sha256:" + "cd" * 32,
        platform="linux/amd64",
        layers=(
            LayerInfo(
                digest="sha256:" + "ef" * 32,
                diff_id="sha256:" + "01" * 32,
                media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                size=123,
            ),
        ),
    )
    return replace(inv, image=image, source="docker-archive:/tmp/sample.tar")
