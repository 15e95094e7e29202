"""Operations: what a caller (HTTP, CLI, console) may do, one module per resource."""
