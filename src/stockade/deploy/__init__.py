"""Stockade's Kubernetes objects: the Kustomize base shipped in ``base/`` and its rendering for
users without Kustomize (``stockade deploy manifests``)."""
