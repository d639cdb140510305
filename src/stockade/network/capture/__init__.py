"""Packet sources: live AF_PACKET rings (``live``) and pcap/pcapng files (``pcapfile``), and the
``struct``-based frame decoder (``decode``) both feed."""
