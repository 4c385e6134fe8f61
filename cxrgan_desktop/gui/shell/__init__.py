"""The window's frame: the application, the main window's layout and wiring, menus,
preferences, welcome and help."""
