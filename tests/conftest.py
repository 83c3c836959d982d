"""Shared pytest setup: fixture plugins live in tests/support/."""

pytest_plugins = [
    "support.env",
    "support.moto",
    "support.servers",
]
