"""Network visibility: lab pods, capture, flows, protocol detection, DLP, TLS, enforcement."""
