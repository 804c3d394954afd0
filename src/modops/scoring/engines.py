"""Inference engines for scoring: the same :class:`~modops.models.predictor.Predictor`, another runtime.

An engine wraps a loaded predictor (a single model or a cascade) and returns a predictor with the
same spec, preset, routing and fusion, whose members run their forward pass elsewhere:

- ``eager``: the predictor itself (PyTorch, with its own device and autocast);
- ``onnx``: each member exported once (TorchScript exporter) to ``<workdir>/<member>.onnx`` and
  run by ONNX Runtime on the CPU in fp32;
- ``compile``: each member's forward pass through ``torch.compile`` (compiled at the first batch).

Every member graph has the outputs scoring reads from one pass: class probabilities [N, C], the
pooled feature-layer embedding [N, D] and, when the network has a loss-prediction head, its
predicted loss [N]. Preprocessing (resizing a smaller member's input, normalising) stays in
torch, shared with the eager path, so an engine changes the arithmetic of the network only.
Grad-CAM and other code that needs the torch network still finds it as ``member.net``.

Nothing here imports Airflow or MLflow; ONNX Runtime is imported when an ``onnx`` engine is made.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modops.models.backbones import get_backbone
from modops.models.io import ModelSpec
from modops.models.loss_head import get_loss_head, stage_features
from modops.models.predictor import Predictor
from modops.runtime import Runtime

__all__ = ["ENGINES", "ScoringOutputs", "create_engine", "export_onnx", "onnx_engine", "compile_engine"]

#: ONNX opset of exported members (ONNX Runtime 1.2x runs up to opset 2x; 17 covers every op used).
OPSET = 17
_INPUT = "images"
_OUTPUTS = ("probs", "embedding", "loss")

#: A member's forward pass: normalised input float32 [N, 3, s, s] -> (probs [N, C], embedding
#: [N, D], predicted loss [N] or None), all float32 on the CPU.
Runner = Callable[[Tensor], tuple[Tensor, np.ndarray, np.ndarray | None]]

log = logging.getLogger(__name__)


class ScoringOutputs(nn.Module):
    """A member's network with every output scoring reads, from one forward pass.

    ``forward(x)``: normalised float [N, 3, s, s] -> ``(probs [N, C], embedding [N, D])``, plus the
    loss head's predicted loss [N] when the network has one. The embedding is the global average
    of the backbone's feature layer, as in :meth:`Predictor.embed`. The feature maps are read with
    forward hooks that live only during the call, so the wrapped network is left as it was.
    """

    def __init__(self, net: nn.Module, *, backbone: str) -> None:
        super().__init__()
        self.net = net
        self.feature_layer = get_backbone(backbone).feature_layer
        head = get_loss_head(net)
        self.head_layers = tuple(head.layers) if head is not None else ()

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        with (
            stage_features(self.net, (self.feature_layer,)) as feature,
            stage_features(self.net, self.head_layers) as stages,
        ):
            logits = self.net(x)
        probs = torch.softmax(logits.float(), dim=1)
        embedding = feature[0].float().mean(dim=(2, 3))
        head = get_loss_head(self.net)
        return (probs, embedding) if head is None else (probs, embedding, head(stages).float())


class _EngineMember:
    """A predictor member whose forward pass is ``runner``; duck-types ``modops.models.predictor._Member``.

    Keeps the original member's name, input size, backbone, torch network (for Grad-CAM) and
    preprocessing; only the network's arithmetic moves to the engine.
    """

    def __init__(self, member: Any, runner: Runner) -> None:
        self.original, self.runner = member, runner
        self.name, self.size, self.backbone, self.net = member.name, member.size, member.backbone, member.net

    def inputs(self, images: Tensor, *, spec: ModelSpec, runtime: Runtime) -> Tensor:
        """uint8 [N, 3, S, S] -> this member's normalised float input [N, 3, size, size]."""
        return self.original.inputs(images, spec=spec, runtime=runtime)

    def probs_and_embeddings(
        self, images: Tensor, *, spec: ModelSpec, runtime: Runtime
    ) -> tuple[Tensor, np.ndarray, np.ndarray | None]:
        """Probabilities float32 [N, C], embeddings float32 [N, D], predicted losses float32 [N] (or None)."""
        return self.runner(self.inputs(images, spec=spec, runtime=runtime))

    def probs(self, images: Tensor, *, spec: ModelSpec, runtime: Runtime) -> Tensor:
        return self.probs_and_embeddings(images, spec=spec, runtime=runtime)[0]

    def embed(self, images: Tensor, *, spec: ModelSpec, runtime: Runtime) -> np.ndarray:
        return self.probs_and_embeddings(images, spec=spec, runtime=runtime)[1]


def _with_members(predictor: Predictor, make_runner: Callable[[Any], Runner], *, runtime: Runtime) -> Predictor:
    """A shallow copy of ``predictor`` whose member attributes are engine members; the original is unchanged.

    Works for any predictor that keeps its members as attributes (``SingleModel.member``,
    ``Cascade.stage1`` / ``stage2``), so routing and fusion stay the predictor's own code.
    """
    members = predictor.members
    wrapped = copy.copy(predictor)
    replaced = 0
    for attr, value in vars(predictor).items():
        if any(value is m for m in members):
            setattr(wrapped, attr, _EngineMember(value, make_runner(value)))
            replaced += 1
    if replaced != len(members):
        raise TypeError(
            f"{type(predictor).__name__} does not keep its {len(members)} member(s) as attributes, so no engine "
            "can wrap it; use engine 'eager' or a SingleModel / Cascade (modops.models.predictor.build_predictor)"
        )
    wrapped.runtime = runtime
    return wrapped


def export_onnx(member: Any, path: str | Path, *, opset: int = OPSET) -> Path:
    """Export one predictor member (its :class:`ScoringOutputs`) to an ONNX file.

    The graph takes ``images``: normalised float32 [N, 3, size, size] (N dynamic) and gives
    ``probs`` [N, C], ``embedding`` [N, D] and, with a loss head, ``loss`` [N]. Uses the
    TorchScript exporter (``dynamo=False``): the dynamo exporter needs onnxscript.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ScoringOutputs(member.net, backbone=member.backbone).eval()
    param = next(member.net.parameters())
    # Two images, not one: a batch of one can let the tracer fold the batch size into a shape.
    dummy = torch.zeros(2, 3, member.size, member.size, device=param.device, dtype=torch.float32)
    outputs = list(_OUTPUTS if get_loss_head(member.net) is not None else _OUTPUTS[:2])
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about shape reads (CBAM's checks) that hold for every batch size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[_INPUT],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in (_INPUT, *outputs)},
        )
    return path


def default_threads() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _OnnxRunner:
    """One ONNX Runtime session on the CPU, fp32."""

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Members are chains of ops: parallelism inside an op pays, between ops it only oversubscribes.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: Tensor) -> tuple[Tensor, np.ndarray, np.ndarray | None]:
        # ONNX Runtime reads NCHW C-order arrays; the eager path's input is channels-last.
        feed = x.detach().cpu().float().contiguous().numpy()
        out = dict(zip(self.outputs, self.session.run(self.outputs, {_INPUT: feed}), strict=True))
        loss = out.get("loss")
        return torch.from_numpy(out["probs"]), out["embedding"], loss


def onnx_engine(predictor: Predictor, *, workdir: str | Path | None = None, threads: int | None = None) -> Predictor:
    """``predictor`` with each member run by ONNX Runtime (CPU, fp32).

    Args:
        predictor: A :class:`~modops.models.predictor.SingleModel` or ``Cascade``; the original is left as it is.
        workdir: Folder for ``<member>.onnx`` (kept); default: a temporary folder removed once the
            sessions have loaded the graphs.
        threads: ONNX Runtime intra-op threads per session (default: this process's CPU count).

    Returns:
        A predictor with the same spec and preset, ``runtime`` the CPU in fp32 (preprocessing runs there).
    """
    threads = threads or default_threads()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="modops-onnx-") as tmp:
            return onnx_engine(predictor, workdir=tmp, threads=threads)
    out = Path(workdir)

    def runner(member: Any) -> Runner:
        return _OnnxRunner(export_onnx(member, out / f"{member.name}.onnx"), threads=threads)

    return _with_members(predictor, runner, runtime=Runtime(torch.device("cpu")))


class _CompiledRunner:
    """A member's :class:`ScoringOutputs` through ``torch.compile``, under the predictor's runtime."""

    def __init__(self, member: Any, *, runtime: Runtime) -> None:
        self.module = torch.compile(ScoringOutputs(member.net, backbone=member.backbone).eval())
        self.runtime = runtime

    def __call__(self, x: Tensor) -> tuple[Tensor, np.ndarray, np.ndarray | None]:
        with self.runtime.inference():
            out = self.module(x)
        loss = out[2].cpu().numpy().astype(np.float32) if len(out) > 2 else None
        return out[0].float(), out[1].float().cpu().numpy().astype(np.float32), loss


def compile_engine(predictor: Predictor, *, workdir: str | Path | None = None, threads: int | None = None) -> Predictor:
    """``predictor`` with each member's forward pass compiled by ``torch.compile`` (at its first batch).

    Keeps the predictor's device and autocast. ``workdir`` is unused; ``threads`` sets torch's
    intra-op threads for the whole process when given.
    """
    if threads:
        torch.set_num_threads(threads)
    runtime = predictor.runtime
    return _with_members(predictor, lambda m: _CompiledRunner(m, runtime=runtime), runtime=runtime)


def _eager(predictor: Predictor, *, workdir: str | Path | None = None, threads: int | None = None) -> Predictor:
    """The predictor as it is (PyTorch eager, its own device and precision)."""
    return predictor


#: Engines by name (``score.engine``): ``factory(predictor, *, workdir, threads) -> Predictor``.
ENGINES: dict[str, Callable[..., Predictor]] = {"eager": _eager, "onnx": onnx_engine, "compile": compile_engine}


def create_engine(
    name: str,
    predictor: Predictor,
    *,
    workdir: str | Path | None = None,
    threads: int | None = None,
    fallback: bool = False,
) -> Predictor:
    """Wrap ``predictor`` in the engine ``name`` (a key of :data:`ENGINES`).

    Args:
        name: ``eager``, ``onnx`` or ``compile``.
        predictor: The loaded model (:func:`~modops.models.predictor.load_predictor`).
        workdir: Where an engine keeps its artefacts (ONNX files); None = a temporary folder.
        threads: Intra-op threads (default: this process's CPU count for ONNX Runtime, torch's own otherwise).
        fallback: When the engine cannot be made (an export the exporter refuses, ONNX Runtime
            missing or refusing the graph, a predictor it cannot wrap), log a warning and return
            ``predictor`` itself (eager) instead of raising: a day's scoring then runs slower
            rather than not at all. It covers making the engine only: ``compile`` compiles at
            the first batch, so its failures come later.

    Raises:
        ValueError: On an unknown name, listing the known ones (also with ``fallback``).
    """
    if name not in ENGINES:
        raise ValueError(f"unknown scoring engine {name!r}; choose one of {sorted(ENGINES)} (score.engine)")
    try:
        return ENGINES[name](predictor, workdir=workdir, threads=threads)
    except Exception as exc:
        if not fallback:
            raise
        log.warning(
            "scoring engine %r could not wrap the model (%s: %s); scoring with 'eager' (PyTorch) instead",
            name,
            type(exc).__name__,
            exc,
        )
        log.debug("scoring engine %r failed", name, exc_info=exc)
        return predictor
