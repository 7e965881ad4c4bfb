"""Featurise the published reference models with timm (one with torchvision) and commit their features as data.

A development step, run when the cost model's features change: it writes
``latency_lut/data/reference_features.json`` (per-block features of each timm model of
``latency_lut.published.PUBLISHED``, with its parameter and MAC counts), which rebuilding the phone
table reads instead of timm. Install timm beside the CPU torch without letting pip replace torch::

    pip install --no-deps timm==1.0.31 torchvision==0.28.0 huggingface_hub safetensors
    python bench/featurise_reference_models.py

Three neutral changes make timm's models count as deployed: attention runs as explicit
matmul-softmax-matmul (``TIMM_FUSED_ATTN=0``, set here before timm is imported), MobileOne and RepViT
are re-parameterised to their deployed single-branch form (``timm.utils.reparameterize_model``), and
eval-mode dropout and in-place activations are neutralised by the featuriser itself. The PyPI
torchvision expects two operator schemas the CPU torch lacks; they are defined before the import.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency_lut.costmodel import FEATURES, block_features  # noqa: E402
from latency_lut.published import FEATURES_FILE, PUBLISHED  # noqa: E402
from search_spaces.files import atomic_write_text  # noqa: E402
from search_spaces.provenance import versions  # noqa: E402


@functools.cache
def import_timm():
    os.environ["TIMM_FUSED_ATTN"] = "0"
    import torch

    library = torch.library.Library("torchvision", "FRAGMENT")
    for name in ("nms", "qnms"):
        try:
            library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:  # already defined (a torchvision that matches this torch)
            pass
    import timm
    from timm.utils.model import reparameterize_model

    return timm, reparameterize_model


def build_reference_model(name: str):
    """A published point's model in its deployed form: a timm name, or ``torchvision:<name>`` for a model timm
    lacks (ShuffleNetV2); re-parameterised where timm knows how, in eval mode."""
    timm, reparameterize_model = import_timm()
    if name.startswith("torchvision:"):
        import torchvision

        return torchvision.models.get_model(name.removeprefix("torchvision:"), weights=None).eval()
    return reparameterize_model(timm.create_model(name, pretrained=False).eval())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FEATURES_FILE)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    models = {}
    for record in PUBLISHED:
        if record.model.startswith("preset:") or record.key in models:
            continue
        started = time.perf_counter()
        model = build_reference_model(record.model)
        x = torch.zeros(1, 3, record.resolution, record.resolution)
        names, feats = block_features(model, x)
        params = sum(p.numel() for p in model.parameters())
        total = feats.sum(axis=0)
        gmacs = float(total[: FEATURES.index("attention_gmacs") + 1].sum())
        models[record.key] = {
            "family": record.family,
            "resolution": record.resolution,
            "params": int(params),
            "gmacs": round(gmacs, 6),
            "blocks": {"names": names, "features": [[round(float(v), 9) for v in row] for row in feats]},
        }
        print(
            f"{record.key:26s} {params / 1e6:6.2f} M params {gmacs:6.3f} GMACs {len(names)} blocks "
            f"({time.perf_counter() - started:.1f} s)"
        )
    data = {
        "about": "Per-block features (latency_lut.costmodel.FEATURES) of timm reference models at batch 1, at the "
        "resolution of their published latency, "
        "deployed form; written by bench/featurise_reference_models.py",
        "features": list(FEATURES),
        "versions": versions("torch", "timm", "torchvision"),
        "models": models,
    }
    atomic_write_text(args.out, json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}: {len(models)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
