"""The reference implementation: the same files as exercises/, with every TODO done."""
