"""Model weights on disk: a plain ``state_dict`` (``.pt``) plus a JSON model card beside it.

The card holds the architecture arguments, the input convention, how the weights were trained
and scored, and the sha256 of the weights file; loading refuses weights whose sha256 does not
match and always uses ``torch.load(..., weights_only=True)``.  Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from ..errors import ModelError
from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..resources import resource_path
from .net import CANONICAL_PX_PER_MM, OUTPUT_CHANNELS, NetConfig, TraceNet

log = logging.getLogger(__name__)

#: The model shipped with ECG Studio (in the source checkout or the installed bundle).
DEFAULT_MODEL = resource_path("models/tracenet.pt")


@dataclass(frozen=True)
class ModelCard:
    """What a weights file is and how it came to be."""

    version: str
    net: NetConfig = field(default_factory=NetConfig)
    px_per_mm: float = CANONICAL_PX_PER_MM
    outputs: tuple[str, ...] = OUTPUT_CHANNELS
    sha256: str = ""
    base_model: str = ""
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return card_json(
            self,
            "TraceNet",
            net=self.net.to_dict(),
            input={"px_per_mm": self.px_per_mm, "channels": "RGB", "scale": "[0, 1]"},
            outputs=list(self.outputs),
            base_model=self.base_model,
        )

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        return cls(
            **card_fields(data),
            net=NetConfig.from_dict(data["net"]),
            px_per_mm=float(data["input"]["px_per_mm"]),
            outputs=tuple(data["outputs"]),
            base_model=data.get("base_model", ""),
        )


def card_json(card: Any, architecture: str, **fields: Any) -> str:
    """A model card as JSON: its version and ``architecture`` first, then the card's own
    ``fields``, then what every card carries (the weights' sha256, training, metrics)."""
    return json.dumps(
        {
            "version": card.version,
            "architecture": architecture,
            **fields,
            "sha256": card.sha256,
            "training": card.training,
            "metrics": card.metrics,
        },
        indent=2,
    )


def card_fields(data: dict) -> dict[str, Any]:
    """What every model card carries, from its JSON (:func:`card_json`)."""
    if not isinstance(data.get("sha256"), str):
        raise ValueError("the card has no sha256 of its weights")
    return {
        "version": data["version"],
        "sha256": data["sha256"],
        "training": data.get("training", {}),
        "metrics": data.get("metrics", {}),
    }


@dataclass(frozen=True)
class NetCard:
    """The card of a small network whose architecture is one config dataclass (``to_dict`` /
    ``from_dict``): subclasses name the architecture, the config class and the input."""

    ARCHITECTURE: ClassVar[str]
    CONFIG: ClassVar[Any]
    INPUT: ClassVar[dict]

    version: str
    net: Any
    sha256: str = ""
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return card_json(self, self.ARCHITECTURE, net=self.net.to_dict(), input=self.INPUT)

    @classmethod
    def from_json(cls, text: str) -> Any:
        data = json.loads(text)
        return cls(**card_fields(data), net=cls.CONFIG.from_dict(data["net"]))


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


_Card = TypeVar("_Card", bound=Any)
_Net = TypeVar("_Net", bound=torch.nn.Module)


def state_bytes(module: torch.nn.Module) -> tuple[bytes, str]:
    """A module's ``state_dict`` as the bytes of a ``.pt`` file, and their sha256."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def read_card(path: Path, parse: Callable[[str], _Card], what: str, hint: str) -> _Card:
    """The card beside weights file ``path``, parsed; ModelError naming ``what`` if either file is
    missing (with ``hint`` on how to get one) or the card cannot be parsed."""
    card_file = card_path(path)
    if not path.is_file() or not card_file.is_file():
        raise ModelError(f"{what} {path} or its card {card_file.name} not found; {hint}")
    try:
        return parse(card_file.read_text(encoding="utf-8"))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{what} card {card_file} is broken ({exc}); restore it or retrain") from None


def verified_state(path: Path, sha256: str, what: str) -> dict:
    """The ``state_dict`` in ``path`` (``weights_only``) if its sha256 is the card's, else ModelError."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelError(
            f"{what} {path} does not match its card (sha256 {digest[:12]}... expected "
            f"{sha256[:12]}...); the file is corrupt or was replaced"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{what} {path} is not a weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{what} {path} does not hold a state dict of tensors")
    return state


def load_checked(
    path: Path, parse: Callable[[str], _Card], build: Callable[[_Card], _Net], what: str, hint: str
) -> tuple[_Net, _Card]:
    """A small network and its card: the card beside ``path`` parsed, the network ``build``
    makes from it given the verified weights, in eval mode on the CPU; ModelError naming ``what``
    if anything is missing, broken or does not fit."""
    card = read_card(path, parse, what, hint)
    state = verified_state(path, card.sha256, what)
    try:
        net = build(card)
        net.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{what} {path} does not fit its architecture: {exc}") from None
    return net.eval(), card


def fit(
    net: torch.nn.Module,
    batches: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    lr: float,
    warmup_share: float,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a small network from scratch: ``steps`` batches (``batches()`` gives inputs and
    targets) under AdamW and a one-cycle learning rate peaking at ``lr`` after ``warmup_share``
    of the steps; left in eval mode.  Returns the training record for its card (steps, lr,
    seconds)."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=warmup_share)
    started = time.time()
    net.train()
    for step in range(steps):
        x, y = batches()
        value = loss(net(x), y)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        if progress:
            progress(step + 1, value.item())
    net.eval()
    return {"steps": steps, "lr": lr, "seconds": round(time.time() - started)}


def save_model(model: torch.nn.Module, path: str | Path, card: _Card) -> _Card:
    """Write weights and card (any frozen card dataclass with ``sha256`` and ``to_json``, e.g.
    :class:`ModelCard`) atomically; returns the card with the weights' sha256 filled in."""
    path = Path(path)
    data, digest = state_bytes(model)
    card = replace(card, sha256=digest)
    write_bytes_atomic(path, data)
    write_text_atomic(card_path(path), card.to_json())
    return card


def load_model(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> tuple[TraceNet, ModelCard]:
    """Load weights and card, checking the sha256; the model is returned in eval mode."""
    path = Path(path) if path else DEFAULT_MODEL
    card = read_card(
        path, ModelCard.from_json, "model weights", "train one with 'ecgstudio train' or pass --model FILE"
    )
    state = verified_state(path, card.sha256, "model weights")
    model = TraceNet(card.net)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"model weights {path} do not fit the architecture in their card: {exc}") from None
    return model.to(device).eval(), card
