"""The server's cryptography: its keys and certificates, secrets and their hashes, bundles;
what a product computes too is in ``satellite_protocol.crypto``."""
