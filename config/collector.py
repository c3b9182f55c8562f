"""The garbage collector, tuned for a process that holds thousands of sockets.

With Python's default (a young collection every 2,000 allocations), each fragment sent to 5,000 walls
ran dozens of young collections, and each moved what the fan-out had in flight at that moment (write
buffers, writer handles) to the old generation. A full collection of such a process, about a million
objects, paused it for 0.6–1 s, and came every seven seconds while fragments flowed: one fragment in
nine reached its walls a second late (`make bench`, fan-out). With young collections every 50,000
allocations a fan-out's short-lived objects die young, and full collections became rare.
"""

import gc

YOUNG_COLLECTION_EVERY = 50_000  # allocations
MIDDLE_COLLECTION_EVERY = 20  # young collections


def tune() -> None:
    old = gc.get_threshold()[2]
    gc.set_threshold(YOUNG_COLLECTION_EVERY, MIDDLE_COLLECTION_EVERY, old)
