"""Segmentation policy: groups of workloads, ordered rules, modes, data rules, learning."""
