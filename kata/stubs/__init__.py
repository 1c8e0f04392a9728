"""The pristine stubs: exercises/ as it was before you wrote anything. `course.py reset` restores from here."""
