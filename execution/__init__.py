"""Bot4 execution package."""
