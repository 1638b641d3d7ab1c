"""Examples you can copy: with the repository root on ``sys.path`` they import as ``examples.*``."""
