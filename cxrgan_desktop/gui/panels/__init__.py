"""One module per tab of the main window, each with its controller."""
