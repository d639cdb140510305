"""Enforcement on the node: L3/L4 rules and sets in the kernel (nftables), the first bytes of
connections that need an application-level verdict through NFQUEUE (iptables-nft), quarantine."""
