"""Stockade: container security for Kubernetes."""

__version__ = "0.1.0"
