"""Bot4 risk package."""
