"""Request logs."""
