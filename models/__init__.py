"""Bot4 models package."""
