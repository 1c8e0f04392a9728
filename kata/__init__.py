"""The course runner behind course.py: steps, progress, checks, lessons, hints, quizzes, demos, direct modes."""
