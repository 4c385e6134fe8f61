"""What every layer shares: atomic file writes, user folders, the long-job protocol
(progress callback and cancel event), output-folder locks, settings and names. Imports
nothing else from the package."""
