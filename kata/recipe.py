"""The training settings a text gets when you do not choose them: one rule, sized from the text and the model.

    learning rate  3e-3 for a model up to 128 wide, and 3e-3 x 128 / d_model beyond: a small model learns
                   best with large steps (3e-4 barely moves it in a few hundred steps); wider ones need smaller
                   steps to stay stable (GPT-2 small, 768 wide, gets 5e-4, near GPT-3's 6e-4 for that size).
    block          64 tokens, halved (down to 16) until the training text holds at least 200 windows, so that
                   a short text is still cut into many different windows rather than a few overlapping ones.
    batch          16 windows, halved (down to 4) until an epoch has at least 8 steps.
    epochs         enough for about 30 passes over a short text, but at least 300 steps in all and at most
                   3,000: a few hundred steps are what a small model needs to learn from a few pages; past a
                   few thousand a 1 MB text has been seen many times and the run should stay in minutes.

Every value you set with a flag is kept as it is; the rest follow from it (a --block_size you choose sizes the
batch and the epochs). A text shorter than MIN_TRAIN_TOKENS training tokens is refused: a model cannot learn
the patterns of a language from less.
"""

import math

MIN_TRAIN_TOKENS = 400        # about 1 KB of English at the course's vocabulary: a few paragraphs
MIN_BLOCK, MAX_BLOCK = 16, 64
MIN_BATCH, MAX_BATCH = 4, 16
MIN_STEPS, MAX_STEPS, PASSES = 300, 3000, 30


def learning_rate(d_model: int) -> float:
    return 3e-3 * min(1.0, 128 / d_model)


def block_size(train_tokens: int) -> int:
    block = MAX_BLOCK
    while block > MIN_BLOCK and train_tokens < 200 * block:
        block //= 2
    return block


def batch_size(train_tokens: int, block: int) -> int:
    batch = MAX_BATCH
    while batch > MIN_BATCH and train_tokens < 8 * batch * block:
        batch //= 2
    return batch


def epochs(steps_per_epoch: int) -> int:
    steps = min(MAX_STEPS, max(MIN_STEPS, PASSES * steps_per_epoch))
    return max(1, math.ceil(steps / steps_per_epoch))


def too_short(train_tokens: int) -> bool:
    return train_tokens < MIN_TRAIN_TOKENS


def fill(args, train_tokens: int, block: int | None = None) -> list[str]:
    """Put the rule's values into the settings of `args` that are None; return them in words, with why.

    `block`: the context length already fixed (by a checkpoint being resumed), else the rule's or the flag's.
    """
    told = []
    if args.lr is None:
        args.lr = learning_rate(args.d_model)
        told.append(f"lr {args.lr:.1e} (d_model {args.d_model})")
    if block is not None:
        args.block_size = block
    elif args.block_size is None:
        args.block_size = block_size(train_tokens)
        told.append(f"block {args.block_size}")
    if args.batch_size is None:
        args.batch_size = batch_size(train_tokens, args.block_size)
        told.append(f"batch {args.batch_size}")
    if args.epochs is None:
        per_epoch = max(1, train_tokens // (args.batch_size * args.block_size))
        args.epochs = epochs(per_epoch)
        told.append(f"{args.epochs} epochs (about {args.epochs * per_epoch:,} steps)")
    return told
