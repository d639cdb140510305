from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.admission.webhook import EXAMPLES, Webhook, start_webhook, stop_webhook


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    tmp = tmp_path_factory.mktemp("webhook")
    hook = start_webhook(
        tmp, "--policy", str(EXAMPLES / "policy.yaml"), "--vulns", str(EXAMPLES / "vulns.yaml")
    )
    try:
        yield hook
    finally:
        stop_webhook(hook)
