"""`course.py import --download gpt2`: GPT-2's released files from the Hugging Face hub, checked byte for byte.

Each file's size and SHA-256 are kept below, so a download that was cut short, altered or replaced on the way
is refused. A file is written under a temporary name beside its place and renamed only once it is whole and
checked: an interrupted download leaves nothing at the final path, and a file already there is never
replaced (one that is GPT-2's own is kept, and not downloaded again).
"""

import hashlib
import os
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .errors import UserError
from .ui import UI

HUB = "https://huggingface.co"
HUB_VARIABLE = "WRITE_TRANSFORMER_HUB"  # another address for the hub: a mirror, or a test's local server
CHUNK = 1 << 20

# The files `course.py import` needs, as the hub serves them: (size in bytes, SHA-256).
MODELS = {
    "gpt2": {
        "config.json": (665, "0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4"),
        "vocab.json": (1042301, "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
        "merges.txt": (456318, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
        "model.safetensors": (548105171, "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707"),
    },
}


def download(name: str, to: Path, ui: UI, files: dict | None = None, base: str | None = None) -> Path:
    """Put the model `name`'s files into the folder `to` and return it; UserError for anything that fails.

    `files` ({file: (size, sha256)}) and `base` (the hub's address) default to MODELS[name] and HUB (or the
    WRITE_TRANSFORMER_HUB variable). A file is fetched from {base}/{name}/resolve/main/{file}.
    """
    files = MODELS[name] if files is None else files
    base = (base or os.environ.get(HUB_VARIABLE) or HUB).rstrip("/")
    if to.exists() and not to.is_dir():
        raise UserError(f"--to {to} is a file, not a folder: name a folder for {name}'s files")
    to.mkdir(parents=True, exist_ok=True)
    for file, (size, sha256) in files.items():
        target = to / file
        if target.exists():
            if _matches(target, size, sha256):
                ui.say(f"{target} is already there, and checked.")
                continue
            raise UserError(f"{target} already exists and is not {name}'s {file}: move it away, or download into "
                            f"another folder with --to")
        fetch(f"{base}/{name}/resolve/main/{file}", target, size, sha256, ui)
    return to


def fetch(url: str, target: Path, size: int, sha256: str, ui: UI) -> None:
    """Download url into target, which must not exist yet: whole, of `size` bytes and `sha256`, or not at all."""
    from .train import Busy

    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(part, "xb") as out, \
                Busy(ui, f"Downloading {target.name}") as busy:
            while chunk := response.read(CHUNK):
                done += len(chunk)
                if done > size:
                    break
                out.write(chunk)
                digest.update(chunk)
                busy.show(f"{_mb(done)} of {_mb(size)}")
        if done != size:
            raise UserError(f"the download of {url} {'stopped after' if done < size else 'went past'} "
                            f"{done:,} of its {size:,} bytes: nothing was kept; run the command again")
        if digest.hexdigest() != sha256:
            raise UserError(f"{url} sent {size:,} bytes whose SHA-256 is not the file's own: nothing was kept "
                            f"(the server, or something on the way, changed it)")
        if target.exists():  # appeared while downloading: it is someone's, and stays
            raise UserError(f"{target} appeared while it was being downloaded: it was left as it is")
        part.rename(target)
    except urllib.error.HTTPError as e:
        raise UserError(f"{url} answered {e.code} {e.reason}: the file is not there") from None
    except urllib.error.URLError as e:
        raise UserError(f"{url} cannot be reached ({_reason(e.reason)}): are you online?") from None
    except (OSError, ValueError) as e:  # the connection broke mid-file (http.client's IncompleteRead too)
        raise UserError(f"the download of {url} broke off after {done:,} of its {size:,} bytes "
                        f"({type(e).__name__}): nothing was kept; run the command again") from None
    finally:
        part.unlink(missing_ok=True)
    ui.say(f"Downloaded {target} ({_mb(size)}), checked.")


def _matches(path: Path, size: int, sha256: str) -> bool:
    if not path.is_file() or path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def _reason(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, socket.timeout):
        return "no answer within 30 seconds"
    return str(getattr(reason, "strerror", None) or reason)


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"
