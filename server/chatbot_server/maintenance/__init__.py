"""Operator commands on the data: seeding sample data and clearing it."""
