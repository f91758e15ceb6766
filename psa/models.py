"""PSA connections, companies, products and billing lines arrive with the PSA issue (#4)."""
