"""All cryptography lives here: keys, certificates, secrets and their hashes."""
