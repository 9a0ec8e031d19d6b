"""Shared vocabulary of Bot4: events, wire format, clock, money, ids, errors, config base.

``core`` imports no other project package.
"""
