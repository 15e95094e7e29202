"""The wire formats and the product-side cryptography that the agent and the server share."""
