"""Domain services: one module per capability. They hold the rules and own transactions."""
