"""Published whole-model latencies on iPhone 12 (Core ML, batch 1; 224x224 unless a record says) and their features;
and, never fitted, other phones' and toolchains' published tables (:data:`OTHER_PHONES`), a check of how the fit
carries over.

The values are what papers and their repositories print or plot; each record keeps its source and
tier (A: printed in text, B: read off a published figure, about +-0.05 ms). Where sources disagree
for one model the record says which value is used and why, and keeps the others.

The reference models are built with timm only when ``python bench/featurise_reference_models.py``
runs (a development step); their per-block features are committed in ``data/reference_features.json``
so that rebuilding the phone table needs no timm. The EfficientFormerV2 presets are featurised from
this project's own layers at build time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .costmodel import FEATURES

__all__ = ["OTHER_PHONES", "PUBLISHED", "PublishedLatency", "point_key", "reference_features", "FEATURES_FILE"]

FEATURES_FILE = Path(__file__).parent / "data" / "reference_features.json"

_REPVIT = "RepViT README (iPhone 12, iOS 16, Xcode 14 Core ML performance report), tier A"
_REPVIT_FIG = "RepViT paper, latency-accuracy figure (iPhone 12, iOS 16), tier B"
_MOBILEONE_FIG = "MobileOne paper, latency-accuracy figure (iPhone 12), tier B"
_EFFICIENTFORMER = "EfficientFormer README (iPhone 12, iOS 15, Core ML), tier A"
_FASTVIT = "FastViT README (iPhone 12 Pro, ModelBench app, 256x256, rounded to 0.1 ms), tier A"
_FASTVIT_NOTE = (
    "an iPhone 12 Pro has the iPhone 12's A14; timed with ModelBench, the tool of the MobileOne README, whose "
    "MobileOne S1-S4 values run -1 to +18% against the RepViT figure's iPhone 12 ones, so these may be a little high"
)
_EFFICIENTFORMERV2 = "EfficientFormerV2 paper (arXiv 2212.08059), ImageNet table (iPhone 12, iOS 16, Core ML), tier A"
_EFFICIENTFORMERV2_FIG = (
    "EfficientFormerV2 README, latency-accuracy figure (iPhone 12, iOS 16, Core ML), tier B (its four presets read "
    "0.90 / 1.10 / 1.60 / 2.70 ms off it, their printed values)"
)
_MOBILEVITV2 = "MobileViTv2 paper (arXiv 2206.02680), Table 2 (iPhone 12, batch 1), tier A"
_FASTVIT_FIG = (
    "FastViT README, latency-accuracy figure (iPhone 12 Pro, ModelBench app; the 224 px these models are published at), tier B"
)
_MOBILEONE_FIG_NOTE = (
    "every model on MobileOne's figure that timm or torchvision builds (MobileNeXt is in neither); the dot read "
    "against the gridlines, which read MobileOne S0-S4 back at their printed values within 0.01 ms. That figure's "
    "setup ran MobileOne S2-S4 7-17% slower than the RepViT figure's iPhone 12 (iOS 16) values and MobileNetV2 9% "
    "slower than the EfficientFormerV2 figure, so these may be a little high"
)
_MOBILEVITV1 = (
    "not fitted: the source puts MobileViT-S (2.0 GMACs) at 3.4 ms, faster than MobileViT-XXS (0.4 GMACs) at 4.8 ms, "
    "so its MobileViT figures do not order by size; reported as a check"
)


@dataclass(frozen=True)
class PublishedLatency:
    """One published latency: the model (timm name, ``torchvision:<name>``, or ``preset:<name>`` of this
    project's default space), its family (the unit of leave-one-family-out), the value used, where it comes
    from, whether the fit uses it, the input resolution and the phone it was timed on (an iPhone 12 Pro has
    the iPhone 12's A14 chip)."""

    model: str
    family: str
    ms: float
    source: str
    fitted: bool = True
    note: str = ""
    alternatives: tuple[tuple[float, str], ...] = field(default=())
    resolution: int = 224
    phone: str = "iPhone 12"

    @property
    def paper(self) -> str:
        """The source without its details (one paper's tables share one setup)."""
        return self.source.split(" (")[0]

    @property
    def key(self) -> str:
        """The model's name in the committed features (see :func:`point_key`)."""
        return point_key(self.model, self.resolution)


def point_key(model: str, resolution: int) -> str:
    """A published point's name: the timm name (``torchvision:<name>`` for a model timm lacks), with ``@<px>``
    unless at 224 px (one model may be published at several resolutions)."""
    return model if resolution == 224 else f"{model}@{resolution}"


PUBLISHED: tuple[PublishedLatency, ...] = (
    PublishedLatency("preset:s0", "efficientformerv2", 0.9, _EFFICIENTFORMERV2),
    PublishedLatency("preset:s1", "efficientformerv2", 1.1, _EFFICIENTFORMERV2),
    PublishedLatency("preset:s2", "efficientformerv2", 1.6, _EFFICIENTFORMERV2),
    PublishedLatency("preset:l", "efficientformerv2", 2.7, _EFFICIENTFORMERV2),
    PublishedLatency("repvit_m0_9", "repvit", 0.9, _REPVIT),
    PublishedLatency("repvit_m1_0", "repvit", 1.0, _REPVIT),
    PublishedLatency("repvit_m1_1", "repvit", 1.1, _REPVIT),
    PublishedLatency("repvit_m1_5", "repvit", 1.5, _REPVIT),
    PublishedLatency("repvit_m2_3", "repvit", 2.3, _REPVIT),
    PublishedLatency("repvit_m3", "repvit", 1.3, "RepViT README of 2023-07 (first version of M3), tier A"),
    PublishedLatency(
        "mobileone_s0",
        "mobileone",
        0.79,
        "MobileOne README (iPhone 12 Pro), tier A",
        note="the only source; an iPhone 12 Pro has the iPhone 12's A14 chip",
        phone="iPhone 12 Pro",
    ),
    *(
        PublishedLatency(
            f"mobileone_s{i}",
            "mobileone",
            ms,
            _REPVIT_FIG,
            note="the iPhone 12 value of the RepViT figure, not the README's iPhone 12 Pro value: the target phone, "
            "and the setup (iOS 16, Xcode report) of the RepViT and EfficientFormerV2 points",
            alternatives=((pro, "MobileOne README (iPhone 12 Pro), tier A"),),
        )
        for i, ms, pro in ((1, 0.9, 0.89), (2, 1.1, 1.18), (3, 1.3, 1.53), (4, 1.6, 1.86))
    ),
    PublishedLatency(
        "mobilenetv2_100",
        "mobilenet",
        0.9,
        _EFFICIENTFORMERV2_FIG,
        note="the iOS 16 setup of the EfficientFormerV2 points; the other sources: 0.98 ms (MobileOne's figure), 0.92 ms "
        "(MobileViT's table, Core ML Tools of 2021), 1.7 ms (EfficientFormer's first arXiv version, iOS 15, whose larger "
        "x1.4 model ran faster at 1.6 ms)",
        alternatives=(
            (0.98, _MOBILEONE_FIG),
            (0.92, "MobileViT paper (arXiv 2110.02178), Table 11 (iPhone 12, Core ML Tools of 2021), tier A"),
            (1.7, "EfficientFormer arXiv v1 abstract (iPhone 12, iOS 15), tier A"),
        ),
    ),
    PublishedLatency(
        "mobilenetv2_140",
        "mobilenet",
        1.2,
        _EFFICIENTFORMERV2_FIG,
        alternatives=((1.6, "EfficientFormer arXiv v1 abstract (iPhone 12, iOS 15), tier A"),),
    ),
    PublishedLatency("mobilenetv1_100", "mobilenet", 0.95, _MOBILEONE_FIG),
    PublishedLatency(
        "mobilenetv3_large_100",
        "mobilenet",
        1.09,
        _MOBILEONE_FIG,
        note=_MOBILEONE_FIG_NOTE + "; RepViT's text times a MobileNetV3-L with GELU for hard-swish at 1.01 ms, another model",
    ),
    PublishedLatency("semnasnet_100", "mnasnet", 1.0, _MOBILEONE_FIG, note="MNASNet-A1; " + _MOBILEONE_FIG_NOTE),
    PublishedLatency("mixnet_s", "mixnet", 1.13, _MOBILEONE_FIG, note=_MOBILEONE_FIG_NOTE),
    PublishedLatency("torchvision:shufflenet_v2_x2_0", "shufflenet", 1.08, _MOBILEONE_FIG, note=_MOBILEONE_FIG_NOTE),
    *(
        PublishedLatency(
            f"efficientformer_{name}",
            "efficientformer",
            ms,
            _EFFICIENTFORMERV2_FIG,
            note="timed on iOS 16, the setup of the EfficientFormerV2 and RepViT points, not the README's iOS 15 value: "
            "older toolchains ran some models far slower (see DeiT-Tiny)",
            alternatives=((readme, _EFFICIENTFORMER),),
        )
        for name, ms, readme in (("l1", 1.4, 1.6), ("l3", 2.7, 3.0), ("l7", 6.6, 7.0))
    ),
    PublishedLatency(
        "efficientnet_b0",
        "efficientnet",
        1.6,
        _MOBILEVITV2,
        note="the value printed in the MobileViTv2 paper's table (tier A), the source of EfficientNet-B2 too, between "
        "the two read off figures (RepViT 1.4 ms, MobileOne 1.72 ms)",
        alternatives=((1.4, _REPVIT_FIG), (1.72, _MOBILEONE_FIG)),
    ),
    PublishedLatency("efficientnet_b2", "efficientnet", 3.8, _MOBILEVITV2, resolution=288),
    PublishedLatency("poolformer_s12", "poolformer", 1.5, _REPVIT_FIG),
    PublishedLatency("poolformer_s24", "poolformer", 2.4, _EFFICIENTFORMERV2_FIG, alternatives=((2.5, _FASTVIT_FIG),)),
    PublishedLatency("poolformer_s36", "poolformer", 3.5, _EFFICIENTFORMERV2_FIG, alternatives=((3.45, _FASTVIT_FIG),)),
    PublishedLatency("poolformer_m36", "poolformer", 5.9, _FASTVIT_FIG, phone="iPhone 12 Pro"),
    PublishedLatency("poolformer_m48", "poolformer", 7.6, _FASTVIT_FIG, phone="iPhone 12 Pro"),
    PublishedLatency("resnet50", "resnet", 2.5, _EFFICIENTFORMERV2_FIG),
    PublishedLatency("swiftformer_xs", "swiftformer", 1.0, _REPVIT_FIG),
    PublishedLatency("swiftformer_s", "swiftformer", 1.2, _REPVIT_FIG),
    PublishedLatency("swiftformer_l1", "swiftformer", 1.6, _REPVIT_FIG),
    *(
        PublishedLatency(f"fastvit_{name}", "fastvit", ms, _FASTVIT, note=_FASTVIT_NOTE, resolution=256, phone="iPhone 12 Pro")
        for name, ms in (("t8", 0.8), ("t12", 1.2), ("s12", 1.4), ("sa12", 1.6), ("sa24", 2.6), ("sa36", 3.5), ("ma36", 4.6))
    ),
    # the family of this project's separable-attention mixer (GroupNorm, 1x1 convolutions, 2x2 patches)
    PublishedLatency("mobilevitv2_050", "mobilevitv2", 1.6, _MOBILEVITV2, resolution=256),
    PublishedLatency(
        "mobilevitv2_100",
        "mobilevitv2",
        3.4,
        _MOBILEVITV2,
        resolution=256,
        note="the paper's own value; SHViT's table (iPhone 12, iOS 16.5) gives 3.8 ms",
        alternatives=((3.8, "SHViT paper (arXiv 2401.16456), Table 4 (iPhone 12, iOS 16.5), tier A"),),
    ),
    PublishedLatency("mobilevitv2_150", "mobilevitv2", 5.1, _MOBILEVITV2, resolution=256),
    PublishedLatency("mobilevitv2_200", "mobilevitv2", 7.5, _MOBILEVITV2, resolution=256),
    PublishedLatency("mobilevitv2_200", "mobilevitv2", 17.0, _MOBILEVITV2, resolution=384),
    PublishedLatency(
        "deit_tiny_patch16_224",
        "deit",
        3.4,
        _MOBILEVITV2,
        note="the newest toolchain of the three sources: the MobileViT paper (Core ML Tools of 2021) printed 10.99 ms "
        "and EfficientFormer's README figure (iOS 15) 9.2 ms for the same model on the same phone",
        alternatives=(
            (10.99, "MobileViT paper (arXiv 2110.02178), Table 11 (iPhone 12, Core ML Tools of 2021), tier A"),
            (9.2, "EfficientFormer README, latency-accuracy figure (iPhone 12, iOS 15), tier B"),
        ),
    ),
    PublishedLatency("deit_small_patch16_224", "deit", 5.3, _FASTVIT_FIG, phone="iPhone 12 Pro"),
    PublishedLatency(
        "deit_base_patch16_224",
        "deit",
        13.2,
        _MOBILEVITV2,
        note="the printed iPhone 12 value (tier A), not the iPhone 12 Pro one read off FastViT's figure",
        alternatives=((11.6, _FASTVIT_FIG),),
    ),
    PublishedLatency("convnext_tiny", "convnext", 3.7, _MOBILEVITV2, alternatives=((3.7, _FASTVIT_FIG),)),
    PublishedLatency("convnext_tiny", "convnext", 8.6, _MOBILEVITV2, resolution=384),
    PublishedLatency("convnext_small", "convnext", 5.4, _FASTVIT_FIG, phone="iPhone 12 Pro"),
    PublishedLatency("convnext_base", "convnext", 8.4, _FASTVIT_FIG, phone="iPhone 12 Pro"),
    PublishedLatency("mobilevit_xxs", "mobilevit", 4.8, _MOBILEVITV2, fitted=False, note=_MOBILEVITV1, resolution=256),
    PublishedLatency("mobilevit_s", "mobilevit", 3.4, _MOBILEVITV2, fitted=False, note=_MOBILEVITV1, resolution=256),
)

_IFORMER = (
    "iFormer paper (arXiv 2501.15369v2), Table 18 (iPhone 13, Core ML Tools, batch 1; iOS 17.7 and Xcode 15.4 per its "
    "repository's README), tier A"
)
_IFORMER_T4 = "iFormer paper (arXiv 2501.15369v2), Table 4 (the setup of its Table 18), tier A"
_IFORMER_T12 = "iFormer paper (arXiv 2501.15369v2), Table 12 (the setup of its Table 18), tier A"
_SWIFTFORMER = (
    "SwiftFormer paper (arXiv 2303.15446), Table 2 (iPhone 14, iOS 16, Core ML, batch 1; printed to 0.1 ms, "
    "'error less than +-0.1 ms'), tier A"
)
_SWIFTFORMER_MOBILEVIT = "no resolution printed; 256 px, the published one, whose top-1 the table prints"
_SHVIT = "SHViT paper (arXiv 2401.16456), Table 4 (iPhone 12, iOS 16.5, Core ML Tools, median of 1,000 runs), tier A"


def _unfitted(
    source: str, phone: str, rows: Sequence[tuple[str, str, int, float]], *, notes: Mapping[int, str] | None = None
) -> tuple[PublishedLatency, ...]:
    """One setup's published rows ``(model, family, px, ms)`` as never-fitted records; `notes` by resolution."""
    return tuple(
        PublishedLatency(model, family, ms, source, fitted=False, note=(notes or {}).get(px, ""), resolution=px, phone=phone)
        for model, family, px, ms in rows
    )


#: Published latencies on other phones or toolchains: never fitted, a check of how the iPhone 12 table's relative
#: costs carry over (``python bench/bench_phone_other_tables.py`` scores each table up to one speed factor). Every
#: row of each table that timm or torchvision builds, as printed. Left out: iFormer's MobileViTv2-1.0, EMO-5M and
#: CMT-Ti ("Failed": too slow to time), SwiftFormer's Swin-T ("NA"), and the models neither library builds
#: (SBCFormer, EfficientMod, CAS-ViT, RepNeXt, EdgeViT, Mobile-Former, MobileViGv2).
OTHER_PHONES: tuple[PublishedLatency, ...] = (
    *_unfitted(
        _IFORMER,
        "iPhone 13",
        (
            ("mobilenetv2_100", "mobilenet", 224, 0.73),
            ("shvit_s1", "shvit", 224, 0.74),
            ("mobilenetv3_large_075", "mobilenet", 224, 0.67),
            ("mobilenetv4_conv_small", "mobilenetv4", 224, 0.60),
            ("iformer_t", "iformer", 224, 0.60),
            ("torchvision:shufflenet_v2_x1_0", "shufflenet", 224, 0.74),
            ("mobilenetv2_140", "mobilenet", 224, 1.02),
            ("mobilenetv3_large_100", "mobilenet", 224, 0.76),
            ("swiftformer_xs", "swiftformer", 224, 0.95),
            ("ghostnetv3_100", "ghostnetv3", 224, 0.99),
            ("efficientnet_b0", "efficientnet", 224, 0.89),
            ("mobileone_s2", "mobileone", 224, 0.92),
            ("lowformer_b0", "lowformer", 224, 1.45),
            ("repvit_m1_0", "repvit", 224, 0.85),
            ("iformer_s", "iformer", 224, 0.85),
            ("torchvision:shufflenet_v2_x1_5", "shufflenet", 224, 1.16),
            ("shvit_s2", "shvit", 224, 1.10),
            ("mobileone_s3", "mobileone", 224, 1.16),
            ("swiftformer_s", "swiftformer", 224, 1.12),
            ("ghostnetv3_130", "ghostnetv3", 224, 1.24),
            ("efficientnet_b1", "efficientnet", 240, 1.29),
            ("fastvit_t12", "fastvit", 256, 1.12),
            ("repvit_m1_1", "repvit", 224, 1.04),
            ("fastvit_s12", "fastvit", 256, 1.26),
            ("mobilenetv4_conv_medium", "mobilenetv4", 256, 1.08),
            ("iformer_m", "iformer", 224, 1.10),
            ("mobilevit_xxs", "mobilevit", 256, 2.12),
            ("mobilevitv2_050", "mobilevitv2", 256, 9.47),
            ("torchvision:shufflenet_v2_x2_0", "shufflenet", 224, 1.94),
            ("mobilevit_s", "mobilevit", 256, 3.55),
            ("shvit_s4", "shvit", 224, 1.48),
            ("efficientvit_b1", "efficientvit", 224, 2.38),
            ("efficientvit_b1", "efficientvit", 288, 3.87),
            ("mobileone_s4", "mobileone", 224, 1.74),
            ("lowformer_b1", "lowformer", 224, 1.90),
            ("efficientnet_b2", "efficientnet", 260, 1.69),
            ("ghostnetv3_160", "ghostnetv3", 224, 1.49),
            ("fastvit_sa12", "fastvit", 256, 1.50),
            ("mobilenetv4_hybrid_medium", "mobilenetv4", 256, 1.75),
            ("swiftformer_l1", "swiftformer", 224, 1.60),
            ("lowformer_b15", "lowformer", 224, 3.02),
            ("iformer_l", "iformer", 224, 1.60),
        ),
    ),
    PublishedLatency(
        "repvit_m1_5",
        "repvit",
        1.54,
        "iFormer paper (arXiv 2501.15369v2), Table 3 (the setup of its Table 18), tier A",
        fitted=False,
        note="the main table's value; the appendix table prints 1.64 ms",
        alternatives=((1.64, _IFORMER),),
        phone="iPhone 13",
    ),
    *_unfitted(
        _IFORMER_T4,
        "iPhone 13",
        (("efficientformerv2_s1", "efficientformerv2", 224, 1.02), ("efficientformerv2_s2", "efficientformerv2", 224, 1.60)),
    ),
    *_unfitted(
        _IFORMER_T12,
        "iPhone 13",
        (
            ("efficientformerv2_l", "efficientformerv2", 224, 2.40),
            ("convnext_base", "convnext", 224, 7.54),
            ("iformer_l2", "iformer", 224, 2.30),
        ),
    ),
    *_unfitted(
        _SWIFTFORMER,
        "iPhone 14",
        (
            ("mobilenetv2_100", "mobilenet", 224, 0.8),
            ("mobilenetv3_large_075", "mobilenet", 224, 0.8),
            ("mobilevit_xs", "mobilevit", 256, 1.5),
            ("swiftformer_xs", "swiftformer", 224, 0.7),
            ("mobilenetv2_140", "mobilenet", 224, 0.9),
            ("mobilenetv3_large_100", "mobilenet", 224, 0.9),
            ("efficientnet_b0", "efficientnet", 224, 1.3),
            ("deit_tiny_patch16_224", "deit", 224, 3.8),
            ("mobilevitv2_100", "mobilevitv2", 256, 1.7),
            ("swiftformer_s", "swiftformer", 224, 0.8),
            ("poolformer_s12", "poolformer", 224, 1.2),
            ("efficientformer_l1", "efficientformer", 224, 1.1),
            ("mobilevitv2_150", "mobilevitv2", 256, 3.4),
            ("swiftformer_l1", "swiftformer", 224, 1.1),
            ("resnet50", "resnet", 224, 1.9),
            ("poolformer_s36", "poolformer", 224, 2.8),
            ("convnext_tiny", "convnext", 224, 2.5),
            ("deit_small_patch16_224", "deit", 224, 9.9),
            ("mobilevitv2_200", "mobilevitv2", 256, 5.0),
            ("efficientformer_l3", "efficientformer", 224, 2.0),
            ("swiftformer_l3", "swiftformer", 224, 1.9),
        ),
        notes={256: _SWIFTFORMER_MOBILEVIT},
    ),
    *_unfitted(
        _SHVIT,
        "iPhone 12",
        (
            ("efficientformer_l1", "efficientformer", 224, 1.5),
            ("efficientformerv2_s1", "efficientformerv2", 224, 1.3),
            ("mobilevitv2_100", "mobilevitv2", 256, 3.8),
            ("efficientnet_b1", "efficientnet", 240, 1.8),
            ("fastvit_t12", "fastvit", 256, 1.4),
            ("mobileone_s4", "mobileone", 224, 1.7),
            ("shvit_s4", "shvit", 256, 1.6),
        ),
    ),
)


def reference_features(path: Path = FEATURES_FILE) -> dict[str, np.ndarray]:
    """The committed whole-model features of the timm reference models (``PublishedLatency.key`` -> one row of
    FEATURES)."""
    data = json.loads(path.read_text())
    if tuple(data["features"]) != FEATURES:
        raise ValueError(
            f"{path} holds features {data['features']} but the cost model uses {list(FEATURES)}: "
            "rerun python bench/featurise_reference_models.py"
        )
    return {name: np.asarray(model["blocks"]["features"], dtype=float).sum(axis=0) for name, model in data["models"].items()}
