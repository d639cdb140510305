"""The container firewall: segmentation policy as code (``policy``: groups, rules, modes, learning,
NetworkPolicy) and its enforcement on a node (``enforce``: nftables sets, first bytes through
NFQUEUE, verdicts, quarantine). It builds on the network pillar's inspection library (frame
decoder, reassembly, protocol detectors, DLP engine) and learns who is who from ``stockade.identity``.
"""
