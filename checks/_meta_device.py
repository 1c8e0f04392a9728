"""Shared by the checks of steps 3, 6, 7 and 8: running a module on PyTorch's meta device.

A meta tensor has a shape and a dtype but no numbers, so a forward pass on it costs nothing; and any tensor the
code makes without `device=` lands on the CPU, where it shows. That is the mistake a course run on a GPU would
meet (`course.py train` uses CUDA or MPS where there is one) and a CPU-only check would never see.
"""

import torch


class OffDevice(torch.overrides.TorchFunctionMode):
    """Notes the functions whose result lands on another device than the input's (a tensor made without device=)."""

    def __init__(self, device):
        super().__init__()
        self.device, self.found = device, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.device.type != self.device:
            self.found.append(getattr(func, "__name__", str(func)))
        return out


def made_on_the_cpu(watch: OffDevice, name: str, fix: str) -> str:
    return (f"a tensor made without device= is on the CPU while {name} is on the meta device (made by "
            f"torch.{watch.found[0]}): {fix}")


def on_meta(call, what: str, name: str = "x", fix: str = ""):
    """call()'s result, run with its inputs on the meta device; AssertionError naming the function that made a
    tensor on the CPU, or saying that `what` fails there. The stub's NotImplementedError goes through."""
    fix = fix or f"make it on {name}.device"
    watch = OffDevice("meta")
    try:
        with watch:
            out = call()
    except NotImplementedError:
        raise
    except RuntimeError as error:
        if watch.found:
            raise AssertionError(made_on_the_cpu(watch, name, fix)) from None
        raise AssertionError(f"{what} fails on the meta device: {str(error).splitlines()[0]}") from None
    assert not watch.found, made_on_the_cpu(watch, name, fix)
    return out
