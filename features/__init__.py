"""Bot4 features package."""
