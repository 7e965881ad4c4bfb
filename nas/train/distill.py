"""In-place distillation losses and the sampling of a sandwich step's random subnets.

**KL** (the default): each smaller subnet minimises KL(p || q) from the largest subnet's predicted
distribution p (detached) to its own q, i.e. cross-entropy with soft targets.

**Adaptive alpha-divergence** (AlphaNet, Wang et al., ICML 2021). With the alpha-divergence

    D_a(p || q) = (sum_i p_i^a q_i^(1-a) - 1) / (a (a - 1)),

a = 1 is KL(p || q), which lets q over-estimate p's uncertainty (mass where p has little costs little),
and a = 0 is KL(q || p), which lets q under-estimate it. The adaptive loss takes, per sample, the larger
of D at a negative and a positive alpha (-1 and 1; chosen by the divergences themselves), so either
failure is penalised. Its gradient,

    grad D_a = -(1/a) sum_i q_i w_i grad log q_i,   w_i = (p_i / q_i)^a,

has, for a < 0, importance weights (q_i / p_i)^|a| that explode where the teacher gives a class almost
nothing; AlphaNet clips them at ``clip`` (5). For a > 0 the term q_i w_i = q_i^(1-a) p_i^a stays bounded
(at a = 1 it is p_i, the KL gradient), so nothing is clipped there. The loss is a surrogate with exactly
that gradient whose value is the divergence (unclipped), so the number it returns means something.

**Bounded sampling** (ElasticViT): subnets of very different size pull shared weights in conflicting
directions; bounding the MACs ratio between consecutively sampled random subnets (``sample_gap``)
keeps consecutive updates alike while the walk still covers the space.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from search_spaces import Arch, Space

#: The in-place distillation losses ``--distill`` accepts.
DISTILL_LOSSES = ("kl", "alpha")
#: AlphaNet's alpha range and importance-weight clip.
ALPHA_LOW, ALPHA_HIGH, WEIGHT_CLIP = -1.0, 1.0, 5.0
#: Draws tried for a random subnet within the bound before taking the nearest one drawn.
GAP_TRIES = 64


def alpha_divergence(p: torch.Tensor, log_q: torch.Tensor, alpha: float) -> torch.Tensor:
    """D_alpha(p || q) per sample (rows of probabilities p, log-probabilities log q); KL at 1 and 0."""
    log_p = p.clamp_min(1e-12).log()
    if alpha == 1.0:
        return (p * (log_p - log_q)).sum(dim=1)
    if alpha == 0.0:
        return (log_q.exp() * (log_q - log_p)).sum(dim=1)
    mixed = torch.logsumexp(alpha * log_p + (1 - alpha) * log_q, dim=1).exp()
    return (mixed - 1) / (alpha * (alpha - 1))


def adaptive_alpha_loss(
    logits: torch.Tensor,
    teacher: torch.Tensor,
    *,
    alpha_low: float = ALPHA_LOW,
    alpha_high: float = ALPHA_HIGH,
    clip: float = WEIGHT_CLIP,
) -> torch.Tensor:
    """AlphaNet's loss of a student's `logits` against the teacher's probabilities (detached): the
    batch mean of max(D_low, D_high) per sample, the negative alpha's importance weights clipped at
    `clip` in the gradient."""
    if not alpha_low < 0 < alpha_high or not clip > 0:
        raise ValueError(f"expected alpha_low < 0 < alpha_high and clip > 0, got {alpha_low}, {alpha_high}, {clip}")
    teacher = teacher.detach()
    log_q = F.log_softmax(logits, dim=1)
    with torch.no_grad():
        q, log_p = log_q.exp(), teacher.clamp_min(1e-12).log()
        values = torch.stack([alpha_divergence(teacher, log_q, a) for a in (alpha_low, alpha_high)])
        pick = values.argmax(dim=0)  # per sample: which alpha penalises this student more
        alpha = torch.tensor([alpha_low, alpha_high], dtype=log_q.dtype, device=log_q.device)[pick].unsqueeze(1)
        weights = (alpha * (log_p - log_q)).exp()
        weights = torch.where(alpha < 0, weights.clamp(max=clip), weights)  # bounded anyway for alpha > 0
        coefficient = -q * weights / alpha  # d(loss)/d(log q_i), per sample
        value = values.gather(0, pick.unsqueeze(0)).mean()
    surrogate = (coefficient * log_q).sum(dim=1).mean()
    return surrogate + (value - surrogate).detach()


def distill_loss(name: str, heads: Sequence[torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
    """The in-place distillation loss `name` of a subnet's classifier heads, averaged over heads."""
    if name == "kl":
        losses = [F.kl_div(F.log_softmax(h, dim=1), teacher, reduction="batchmean") for h in heads]
    elif name == "alpha":
        losses = [adaptive_alpha_loss(h, teacher) for h in heads]
    else:
        raise ValueError(f"unknown distillation loss {name!r}; accepted: {', '.join(DISTILL_LOSSES)}")
    return sum(losses) / len(losses)


def sample_bounded(
    space: Space,
    rng: random.Random,
    previous: float | None,
    gap: float | None,
    macs_of: Callable[[Arch], float],
) -> Arch:
    """A random subnet whose MACs are within a factor `gap` of `previous` (the last random subnet's):
    the first of up to :data:`GAP_TRIES` uniform draws inside the bound, else the nearest drawn. No
    bound (or no previous subnet): one uniform draw."""
    first = space.sample(rng)
    if gap is None or previous is None:
        return first
    best, best_distance = first, math.inf
    for i in range(GAP_TRIES):
        arch = first if i == 0 else space.sample(rng)
        distance = abs(math.log(macs_of(arch) / previous))
        if distance <= math.log(gap):
            return arch
        if distance < best_distance:
            best, best_distance = arch, distance
    return best


__all__ = ["DISTILL_LOSSES", "alpha_divergence", "adaptive_alpha_loss", "distill_loss", "sample_bounded"]
