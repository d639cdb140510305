"""Kubernetes object helpers shared by the pillars that read manifests and API objects (compliance,
admission, identity, the firewall's NetworkPolicy import): pod spec walking, owners, List flattening.
Imports only ``stockade.model``."""
