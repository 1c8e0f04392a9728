"""Where `course.py train` keeps its models: the best one of this run, and the one of the run before.

    checkpoint/            the best model of this run so far, replaced (atomically) each time it improves
    checkpoint.previous/   the model that was in checkpoint/ when this run began, kept when the run first saves

Only a folder the course provably wrote (step 11's is_checkpoint_folder) is ever replaced or deleted: anything
else in the way stops the run before it trains, in one sentence. So does a folder the run could not save in
(read-only, full) and another training saving into the same folder (TrainingLock).
"""

import math
import os
import shutil
import sys
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
        try:
            with self.ckpt.atomic_directory(self.directory) as folder:
                self.ckpt.write_checkpoint(folder, model, tokenizer, extra={
                    "epoch": epoch, "best_val_loss": val_loss, "optimizer": optimizer.state_dict()})
                if self.keep_earlier and self.saved_epoch is None and self.directory.exists():
                    self.check_folders()
                    if self.previous.exists():
                        shutil.rmtree(self.previous)
                    self.moved = True  # set first: Ctrl+C may land right after the rename
                    self.directory.rename(self.previous)
        except (OSError, ValueError) as e:  # a full disk, a folder made read-only meanwhile: the new one is gone
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise UserError(f"epoch {epoch + 1} could not be saved ({why}), so training stopped: "
                            f"{self.interrupted()}", code=1) from None
        self.best, self.saved_epoch = val_loss, epoch
        return True

    def check_writable(self, need: int) -> None:
        """UserError, before training, where a save would fail: a read-only folder, or too little free space.

        `need` is the size of one checkpoint in bytes: a save writes the new one in full beside the last."""
        parent = self.directory.parent
        for folder in (self.directory, self.previous):
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{folder}/ is read-only, so the run could not replace it: make it writable, or "
                                f"save elsewhere with --checkpoint")
        try:
            free = shutil.disk_usage(parent if parent.exists() else Path.cwd()).free
        except OSError:
            return
        if free < need + 2**20:
            raise UserError(f"{parent}/ has {free / 2**20:,.1f} MB free, and a checkpoint of this model needs "
                            f"about {need / 2**20:,.1f} MB: free some space, or save elsewhere with --checkpoint")

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


class TrainingLock:
    """.NAME.lock beside the checkpoint folder while a training saves into it: a second one is refused.

    The file holds the process id, so that the lock of a training that was killed (and never removed it) is
    recognised and taken over. Made with O_EXCL: of two trainings that start at once, one gets it."""

    HEADER = "write-transformer training\n"

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory.with_name(f".{directory.name}.lock")
        self.held = False

    def __enter__(self) -> "TrainingLock":
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            except OSError as e:
                raise UserError(f"{self.directory.parent}/ cannot be written ({e.strerror}): make it writable, or "
                                f"save elsewhere with --checkpoint") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{self.HEADER}{os.getpid()}\n")
            self.held = True
            return self
        raise UserError(f"another training has just started saving into {self.directory}/: wait for it to "
                        f"end, or save elsewhere with --checkpoint")

    def _take_over_if_stale(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        header, _, pid = text.partition("\n")
        if header + "\n" != self.HEADER:
            raise UserError(f"{self.path} is in the way, and the course did not write it: move it away and "
                            f"train again")
        pid = pid.strip()
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            raise UserError(f"another training (process {pid}) is saving into {self.directory}/: wait for it to "
                            f"end, or save elsewhere with --checkpoint")
        self.path.unlink(missing_ok=True)  # its training ended without removing it (killed, a power cut)

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    """Whether process `pid` is running (on Windows, os.kill would end it: ask for a handle instead)."""
    if sys.platform == "win32":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True
