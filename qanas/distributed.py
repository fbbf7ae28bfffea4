"""torch.distributed for `torchrun`: process-group setup, rank-0 writes, small collectives.

`qanas train-supernet` and `qanas search` run unchanged as one process; under
``torchrun --nproc_per_node N`` (or several nodes) every process runs the same
command, and this module turns torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) into a process group:
gloo when the work runs on CPU, nccl when it runs on CUDA. Without those
variables (or with ``WORLD_SIZE=1``) nothing is initialised and every helper is
the single-process identity, so callers never branch on "am I distributed".

Design rules the callers follow:
* Every rank runs the same program in lockstep (SPMD); anything that decides
  what happens next (FairNAS paths, pymoo's populations) is seeded identically
  on every rank and checked with `DistContext.check_same`.
* Only the main rank (rank 0) writes files and prints results; `on_main` runs
  such a step there and re-raises its error on every rank, so a refused
  ``--out`` stops all ranks instead of leaving the others blocked in a collective.

torch is imported inside the functions, so that the CLI can ask
`is_main_process` without loading it.

Example:
    >>> with session("cpu") as ctx:  # doctest: +SKIP
    ...     shard = items[ctx.rank::ctx.world_size]
    ...     results = ctx.all_gather_object(score(shard))
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from qanas.errors import ConfigError, QanasError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT_S = 1800


class DistributedMismatchError(QanasError, RuntimeError):
    """Ranks that must agree (same FairNAS paths, same population) computed different values."""


class RemoteRankError(QanasError, RuntimeError):
    """A step run on the main rank failed; raised on the other ranks with its message."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the single-process context when `world_size == 1`.

    Attributes:
        rank: global rank, 0 .. world_size - 1.
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
        backend: "gloo", "nccl", or None when no process group exists.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints results."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group with more than one rank exists."""
        return self.world_size > 1

    def _device(self) -> torch.device:
        # nccl only moves CUDA tensors; gloo only CPU ones.
        import torch

        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def barrier(self) -> None:
        """Waits until every rank got here."""
        import torch

        if self.is_distributed:
            torch.distributed.barrier()

    def broadcast_object(self, obj: T, src: int = 0) -> T:
        """`obj` of rank `src` (picklable), returned on every rank."""
        import torch

        if not self.is_distributed:
            return obj
        box = [obj if self.rank == src else None]
        torch.distributed.broadcast_object_list(box, src=src, device=self._device())
        return box[0]

    def all_gather_object(self, obj: Any) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        import torch

        if not self.is_distributed:
            return [obj]
        out: list = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sums `tensor` over the ranks in place (moved to the backend's device and back)."""
        import torch

        if not self.is_distributed:
            return tensor
        device = self._device()
        work = tensor if tensor.device == device else tensor.to(device)
        torch.distributed.all_reduce(work, op=torch.distributed.ReduceOp.SUM)
        if work is not tensor:
            tensor.copy_(work)
        return tensor

    def check_same(self, value: str, what: str) -> None:
        """Raises `DistributedMismatchError` unless every rank passed the same `value`.

        Args:
            value: a short digest of the rank's state (e.g. `digest` of the step's paths).
            what: what the value describes, for the error message.
        """
        if not self.is_distributed:
            return
        values = self.all_gather_object(value)
        if len(set(values)) != 1:
            listed = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
            raise DistributedMismatchError(
                f"{what} differ across ranks ({listed}); every rank must run the same qanas "
                f"version with the same flags and seed"
            )

    def on_main(self, fn: Callable[[], T], share: bool = False) -> T | None:
        """Runs `fn` on rank 0 only; its exception is re-raised on every rank.

        Args:
            fn: the step (typically one that writes files).
            share: broadcast `fn`'s (picklable) result to every rank; otherwise rank 0
                gets it and the other ranks get None.

        Raises:
            The original exception on rank 0; on the other ranks the same type when it
            is a `QanasError`/builtin that takes a message, else `RemoteRankError`.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - re-raised below on every rank
                error = exc
        if not self.is_distributed:
            if error is not None:
                raise error
            return result
        status = self.broadcast_object(
            (None if error is None else (type(error), str(error)),
             result if share and error is None else None))
        if error is not None:
            raise error
        if self.is_main:
            return result
        if status[0] is not None:
            kind, message = status[0]
            try:
                remote = kind(message)
            except Exception:  # noqa: BLE001 - a type whose constructor needs more
                remote = RemoteRankError(f"rank 0 failed: {kind.__name__}: {message}")
            raise remote
        return status[1] if share else None


SINGLE = DistContext()
_current: DistContext = SINGLE


def env_world(env: Mapping[str, str] | None = None) -> dict[str, int] | None:
    """Rank, world size and local rank from torchrun's variables, or None outside torchrun.

    Raises:
        ConfigError: a variable that is not an integer, a rank outside the world, or a
            multi-process world without ``MASTER_ADDR``/``MASTER_PORT``.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    values = {}
    for name, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "0")):
        raw = env.get(name, default)
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"environment variable {name}={raw!r} is not an integer; launch "
                              f"with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK"
                              ) from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world}); "
                          f"launch with torchrun")
    if world > 1:
        missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not env.get(n)]
        if missing:
            raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set; launch "
                              f"with torchrun (--standalone, or --rdzv-endpoint host:port)")
    return {"rank": rank, "world_size": world, "local_rank": values["LOCAL_RANK"]}


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """The torch device for `device` ("cpu", "cuda", "cuda:N"); plain "cuda" → cuda:local_rank.

    Raises:
        ConfigError: CUDA asked for but not available, or an unknown device string.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"device {device!r} is not supported; use cpu or cuda")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for CUDA but torch sees no GPU; use "
                          f"--device cpu or install a CUDA build of torch")
    return torch.device("cuda", local_rank if dev.index is None else dev.index)


def init_distributed(device: str | torch.device = "cpu",
                     timeout_s: int = DEFAULT_TIMEOUT_S) -> DistContext:
    """Joins torchrun's process group (idempotent) and makes it `current()`.

    gloo for CPU work, nccl when `device` is CUDA (each process then uses
    ``cuda:LOCAL_RANK``). Outside torchrun, or with one process, returns the
    single-process context and initialises nothing.
    """
    import torch

    global _current
    world = env_world()
    if world is None or world["world_size"] == 1:
        _current = SINGLE
        return _current
    dev = resolve_device(device, world["local_rank"])
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if torch.distributed.is_initialized():
        if _current.backend != backend:
            raise ConfigError(f"this process already joined a {_current.backend} process group; "
                              f"--device {device} needs {backend}: run it in another torchrun job")
        return _current
    if backend == "nccl":
        torch.cuda.set_device(dev)
    torch.distributed.init_process_group(backend=backend, init_method="env://",
                                         timeout=timedelta(seconds=timeout_s))
    _current = DistContext(world["rank"], world["world_size"], world["local_rank"], backend)
    atexit.register(shutdown)
    return _current


def current() -> DistContext:
    """The context set by `init_distributed` (the single-process one before or without it)."""
    return _current


def shutdown() -> None:
    """Leaves the process group (if any) and restores the single-process context."""
    import torch

    global _current
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Every rank reaches here before any tears its group down: a rank destroying gloo
        # while its peer still uses the connection aborts the process (std::terminate).
        try:
            torch.distributed.barrier()
        except RuntimeError:  # a peer already failed; torchrun reports that failure
            pass
        torch.distributed.destroy_process_group()
    _current = SINGLE


@contextmanager
def session(device: str | torch.device = "cpu") -> Iterator[DistContext]:
    """The process group a command runs in (`init_distributed`).

    The group outlives the command and is destroyed at interpreter exit (`shutdown`
    is registered with `atexit`): torch cannot reliably build a second default
    group in the same process, and a program may run several commands in a row.
    """
    yield init_distributed(device)


def is_main_process() -> bool:
    """True unless this is a non-zero torchrun rank (works before the group exists)."""
    if _current.is_distributed:
        return _current.is_main
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def digest(items: Any) -> str:
    """A short stable hash of `str(items)`, for `DistContext.check_same`."""
    return hashlib.sha256(str(items).encode()).hexdigest()[:16]
