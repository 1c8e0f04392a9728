"""Where `course.py train` keeps its models: the best one of this run, and the one of the run before.

    checkpoint/            the best model of this run so far, replaced (atomically) each time it improves
    checkpoint.previous/   the model that was in checkpoint/ when this run began, kept when the run first saves

Only a folder the course provably wrote (step 11's is_checkpoint_folder) is ever replaced or deleted: anything
else in the way stops the run before it trains, in one sentence.
"""

import math
import shutil
from pathlib import Path

from .errors import UserError


class Rotation:
    def __init__(self, ckpt, directory: Path, keep_earlier: bool, best: float = math.inf):
        self.ckpt = ckpt              # step 11's module: atomic_directory, write_checkpoint, is_checkpoint_folder
        self.directory = directory
        self.previous = directory.with_name(directory.name + ".previous")
        self.keep_earlier = keep_earlier  # a new run over an earlier model: that one moves to previous/
        self.best = best              # the validation loss to beat
        self.saved_epoch = None       # the epoch (from 0) of this run's last save
        self.moved = False            # the earlier model was moved to previous/
        self.check_folders()

    def check_folders(self) -> None:
        """UserError, before anything is written, for a folder in the way that the course did not write."""
        directory = self.directory
        old = directory.with_name(directory.name + ".old")
        if directory.exists() and not self.ckpt.is_checkpoint_folder(directory):
            raise UserError(f"{directory}/ holds files that are not a checkpoint's, so it is left as it is: move "
                            f"it away, or save elsewhere with --checkpoint")
        for folder in ([self.previous] if self.keep_earlier else []) + ([old] if directory.exists() else []):
            if (folder.exists() or folder.is_symlink()) and not self.ckpt.is_checkpoint_folder(folder):
                raise UserError(f"{folder}/ holds files that the course did not write, so it is left as it is: "
                                f"move it away (or rename it) and train again")

    def offer(self, epoch: int, val_loss: float | None, model, tokenizer, optimizer) -> bool:
        """Save the model if its validation loss beats the best so far; True if it was saved.

        The new checkpoint is written in full first; the earlier one steps aside to previous/ only then, right
        before the new one is renamed in (Ctrl+C between the two renames: see interrupted)."""
        if val_loss is None or not val_loss < self.best:
            return False
        with self.ckpt.atomic_directory(self.directory) as folder:
            self.ckpt.write_checkpoint(folder, model, tokenizer, extra={
                "epoch": epoch, "best_val_loss": val_loss, "optimizer": optimizer.state_dict()})
            if self.keep_earlier and self.saved_epoch is None and self.directory.exists():
                self.check_folders()
                if self.previous.exists():
                    shutil.rmtree(self.previous)
                self.moved = True  # set first: Ctrl+C may land right after the rename
                self.directory.rename(self.previous)
        self.best, self.saved_epoch = val_loss, epoch
        return True

    def interrupted(self) -> str:
        """After Ctrl+C: put the earlier model back if the run stopped between its renames; say what is kept."""
        directory = self.directory
        if self.moved and self.saved_epoch is None and not directory.exists() and self.previous.is_dir():
            self.previous.rename(directory)
        return self.kept()

    def kept(self) -> str:
        """Where the last good model is, in words."""
        if self.saved_epoch is not None:
            return (f"the best checkpoint (epoch {self.saved_epoch + 1}, validation loss {self.best:.3f}) is in "
                    f"{self.directory}/")
        if (self.directory / "model.pt").exists():
            return f"{self.directory}/ still holds the checkpoint it had"
        return "no checkpoint was saved yet"
