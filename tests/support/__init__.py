"""Test support code shared by several test modules (servers that play recorded real data)."""
