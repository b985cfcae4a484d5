"""A spare taking over one big recording server (issue 14, items 2 and 4)."""
