"""Results windows and the figures for papers."""
