"""Your implementation: one file per step. `python course.py` tells you which file to open next."""
