"""Test support code: fixtures and helpers shared by every tier."""
