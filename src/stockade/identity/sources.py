"""Choosing an identity source by name, as the CLI's ``--identities`` gives it:

- ``kubernetes``: the API of the cluster this runs in (the pod's service account when
  ``KUBERNETES_SERVICE_HOST`` is set), else of ``$KUBECONFIG`` or ``~/.kube/config``;
- ``kubernetes:FILE``: the API of that kubeconfig's current context;
- anything else: a file (Stockade's workload list or ``kubectl get pods -A -o json``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockade.identity.directory import Directory

KUBERNETES = "kubernetes"


def is_kubernetes(spec: str) -> bool:
    return spec == KUBERNETES or spec.startswith(KUBERNETES + ":")


def client_for(spec: str) -> object:
    """The Kubernetes ``ApiClient`` a ``kubernetes[:FILE]`` source names."""
    from stockade.identity.kubeapi import api_client

    kubeconfig = spec.partition(":")[2] or None
    in_cluster = kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    return api_client(kubeconfig, in_cluster=in_cluster)


@contextmanager
def opened(spec: str, *, node: str | None = None, timeout: float = 30.0) -> Iterator[Directory]:
    """The directory of a source, kept current while the context is open for the API."""
    if not is_kubernetes(spec):
        from stockade.identity.static import load

        yield load(Path(spec))
        return
    from stockade.identity.kubeapi import KubernetesIdentity

    ids = KubernetesIdentity(client_for(spec), node=node)
    ids.start(timeout=timeout)
    try:
        yield ids.directory
    finally:
        ids.stop()
