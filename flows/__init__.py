"""Bot4 flows package."""
