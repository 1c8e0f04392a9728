"""How many CPU threads to train on: measured, not guessed.

A small model's matrix multiplies are short, so several threads spend much of a step waiting for each other,
and when another program holds a core, a thread that waits for that core holds up every step. The fastest
count therefore depends on the model and on what else the machine is doing at that moment. Before training,
`choose_threads` times a few real training steps (forward and backward, no update) on each candidate count,
interleaved so that a burst of load from elsewhere hits every candidate alike, and keeps the fastest.
The probe leaves the model, its gradients and every random stream as it found them.
"""

import time

PROBE_SECONDS = 1.5     # at most this long in all, however large the model
ROUNDS = 3              # each candidate is timed this many times, interleaved; its best time counts


def candidates(cores: int) -> list[int]:
    """1, 2, 4, ... up to the number of cores, and that number itself: [1, 2] on two cores."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


def choose_threads(model, batch, torch) -> tuple[int, str]:
    """(threads, why): the fastest thread count for training `model` on `batch` = (x, y), and the timings."""
    cores = torch.get_num_threads()
    if cores <= 1:
        return 1, "only one is available"
    counts = candidates(cores)
    best = {n: float("inf") for n in counts}
    x, y = batch
    was_training = model.training
    model.train()
    began = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # dropout in the probe must not shift the run's random stream
        for round_ in range(ROUNDS + 1):
            for n in counts:
                torch.set_num_threads(n)
                start = time.perf_counter()
                _, loss = model(x, y)
                loss.backward()
                seconds = time.perf_counter() - start
                if round_ > 0:  # the first round only warms up (memory, caches, thread pools)
                    best[n] = min(best[n], seconds)
            if round_ > 0 and time.perf_counter() - began > PROBE_SECONDS:
                break
    for p in model.parameters():
        p.grad = None
    model.train(was_training)
    chosen = min(counts, key=lambda n: best[n])
    torch.set_num_threads(chosen)
    timings = ", ".join(f"{n}: {best[n] * 1000:.0f} ms" for n in counts)
    return chosen, f"the fastest of a short probe (ms per step by threads, {timings})"

