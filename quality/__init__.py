"""Bot4 quality package."""
