"""The cryptography a product does (JWS, certificates, SLR codes, its keys, registration
token proofs); the server's ``satellite.crypto`` uses it for the other side of each exchange."""
