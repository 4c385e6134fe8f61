"""Running a long task off the GUI thread: the worker and the Cancel/progress controls."""
