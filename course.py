#!/usr/bin/env python3
"""write-transformer: build GPT from scratch in 11 test-first steps, then train it on your text and talk to it.

    python course.py            where you stand: the current step, its lesson, how its checks stand
    python course.py --help     every command

The runner behind these commands lives in kata/ (one concept per file); your code lives in exercises/.
"""

from kata.cli import exit_now, main

if __name__ == "__main__":
    exit_now(main())
