"""The elastic supernet: active subnet == extracted subnet, exact counting, presets, extraction, training."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import search_spaces
import supernet
from search_spaces import Arch, SpaceError
from supernet.mixers import MHSA, Additive, Separable

SPACE = search_spaces.load("efficientformerv2")
N_ARCHS = 56
ARCHS = [SPACE.sample(random.Random(2024 + i)) for i in range(N_ARCHS)]
MAC_ARCHS = ARCHS[:20]

# Published figures (docs/models.md section 1): parameters with the distillation head, GMACs at 224.
PRESETS = {"s0": (3_600_256, 0.396e9), "s1": (6_185_560, 0.652e9), "s2": (12_710_112, 1.247e9), "l": (26_322_288, 2.553e9)}


def mixers_of(archs) -> set[str]:
    return {m for a in archs for stage in a.mixers for m in stage}


def randomize_(module: nn.Module, seed: int = 0) -> None:
    """Random layer scales (~U(0.5, 1.5)), BN/GN statistics and affine, and position biases, so that a
    wrong slice or a wrong mixer shows in the output (the default layer scale 1e-5 would hide it)."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * std)

    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layer_scale"):
                uniform(p, 0.5, 1.5)
            elif name.endswith("attention_biases"):
                normal(p, 0.5)
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                uniform(m.weight, 0.5, 1.5)
                normal(m.bias, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                normal(m.running_mean, 0.1)
                uniform(m.running_var, 0.5, 1.5)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = supernet.build(SPACE)
    randomize_(model)
    return model.eval()


def image(resolution: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def run_active(net, arch, x):
    net.set_active(arch)
    net.eval()
    with torch.no_grad():
        return net(x)


def assert_agree(a: torch.Tensor, b: torch.Tensor):
    """Within 1e-5 (relative to the logits' scale when they exceed 1)."""
    scale = max(1.0, b.abs().max().item())
    diff = (a - b).abs().max().item()
    assert diff <= 1e-5 * scale, f"max difference {diff} (logit scale {scale})"


# ---- the sampled architectures cover what they must ----------------------------------------------------
def test_sampled_archs_cover_every_mixer_and_resolution():
    assert mixers_of(ARCHS) == {"none", "mhsa", "separable", "additive", "sepvit"}
    assert mixers_of(MAC_ARCHS) == {"none", "mhsa", "separable", "additive", "sepvit"}
    # SepViT in 30+ of them, in each of its stages (7x7 windows: padded at 192 and 256 px, exact at 224)
    assert sum("sepvit" in mixers_of([a]) for a in ARCHS) >= 30
    assert all(any("sepvit" in a.mixers[s] for a in ARCHS) for s in range(3))
    assert {a.resolution for a in ARCHS} == set(SPACE.resolutions)
    # MHSA both as stride attention (stage 3) and plain (stage 4)
    assert any("mhsa" in a.mixers[2] for a in ARCHS) and any("mhsa" in a.mixers[3] for a in ARCHS)
    assert len(set(ARCHS)) == N_ARCHS


# ---- active supernet == extracted subnet ---------------------------------------------------------------
@pytest.mark.parametrize("i", range(N_ARCHS), ids=lambda i: f"arch{i}")
def test_active_supernet_matches_extracted(net, i):
    arch = ARCHS[i]
    x = image(arch.resolution, seed=i)
    y_net = run_active(net, arch, x)
    assert net.active == arch
    model = net.extract(arch).eval()
    with torch.no_grad():
        y_model = model(x)
    assert y_net.shape == y_model.shape == (1, 1000)
    assert torch.isfinite(y_net).all()
    assert_agree(y_model, y_net)
    # parameter count of the extracted model == the analytic count
    counted = supernet.count(arch)
    assert counted.params == sum(p.numel() for p in model.parameters())
    assert model.arch == arch


def test_extract_defaults_to_the_active_arch(net):
    arch = ARCHS[0]
    x = image(arch.resolution)
    y = run_active(net, arch, x)
    model = net.extract().eval()
    assert model.arch == arch
    with torch.no_grad():
        assert_agree(model(x), y)


def test_mixer_choice_changes_the_output(net):
    """The agreement test is not vacuous: swapping one block's mixer changes the logits clearly."""
    s0 = SPACE.preset("s0")
    x = image(224)
    base = run_active(net, s0, x)
    outputs = {}
    for mixer in ("none", "separable", "additive"):
        mixers = list(map(list, s0.mixers))
        mixers[3][3] = mixer
        other = Arch.from_dict({**s0.to_dict(), "mixers": mixers})
        outputs[mixer] = run_active(net, other, x)
        assert (outputs[mixer] - base).abs().max() > 1e-3, mixer
    assert (outputs["separable"] - outputs["additive"]).abs().max() > 1e-3
    # and a narrower width of the same layout changes it too
    narrower = Arch.from_dict({**s0.to_dict(), "widths": [32, 48, 96, 128]})
    assert (run_active(net, narrower, x) - base).abs().max() > 1e-3


# ---- exact MACs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(MAC_ARCHS)), ids=lambda i: f"arch{i}")
def test_macs_match_flop_counter(net, i):
    arch = MAC_ARCHS[i]
    model = net.extract(arch).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image(arch.resolution))
    assert supernet.count(arch).macs == counter.get_total_flops() // 2


# ---- presets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_counts_match_published(name):
    params, macs = PRESETS[name]
    counted = supernet.count(SPACE.preset(name))
    assert counted.params == params
    assert abs(counted.macs - macs) / macs < 0.01


@pytest.mark.parametrize("name", ["s0", "l"])
def test_preset_extracted_params_and_macs(net, name):
    arch = SPACE.preset(name)
    model = net.extract(arch).eval()
    assert sum(p.numel() for p in model.parameters()) == PRESETS[name][0]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = model(image(224))
    assert supernet.count(arch).macs == counter.get_total_flops() // 2
    assert_agree(y, run_active(net, arch, image(224)))


# ---- extracted models --------------------------------------------------------------------------------
def test_extracted_model_holds_only_its_arch(net):
    s0 = SPACE.preset("s0")
    model = net.extract(s0)
    assert isinstance(model, supernet.SubNet) and not isinstance(model, supernet.SuperNet)
    types = {type(m) for m in model.modules()}
    assert Separable not in types and Additive not in types
    assert sum(isinstance(m, MHSA) for m in model.modules()) == 4
    names = [spec.name for spec in s0.layers()]
    assert list(model.layers._modules) == names
    for key in model.state_dict():
        assert key.split(".")[1] in names, key
    # nothing shared with the supernet: the copies are independent tensors
    net_ptrs = {t.data_ptr() for t in net.parameters()}
    assert not any(p.data_ptr() in net_ptrs for p in model.parameters())
    # weights are the leading slices of the supernet's
    full = net.slots["stage3_block4_ffn"]["ffn"].fc1.conv.weight
    part = model.layers.stage3_block4_ffn.fc1.conv.weight
    assert part.shape == (96 * 4, 96, 1, 1)
    assert torch.equal(part, full[:384, :96])


def test_extracted_model_runs_at_other_resolutions(net):
    s0 = SPACE.preset("s0")
    model = net.extract(s0).eval()
    with torch.no_grad():
        for res in (256, 192, 160):
            y = model(image(res))
            assert y.shape == (1, 1000) and torch.isfinite(y).all()
        # at 192 the position-bias table needs no interpolation: the model equals the supernet's s0@192
        s0_192 = Arch.from_dict({**s0.to_dict(), "resolution": 192})
        assert_agree(model(image(192, seed=3)), run_active(net, s0_192, image(192, seed=3)))


def test_extracted_model_save_load_round_trip(net, tmp_path):
    arch = SPACE.preset("s0")  # MHSA with stride attention and plain, attention downsampling
    model = net.extract(arch).eval()
    x = image(arch.resolution, batch=2)
    with torch.no_grad():
        y = model(x)
    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False).eval()
    assert loaded.arch == arch
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
    # the state dict alone also restores it into a fresh SubNet
    torch.save(model.state_dict(), tmp_path / "state.pt")
    fresh = supernet.SubNet(arch)
    fresh.load_state_dict(torch.load(tmp_path / "state.pt"))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), y)


def test_batch_size_does_not_change_eval_outputs(net):
    arch = next(a for a in ARCHS if a.resolution == 192 and {"separable", "additive"} <= mixers_of([a]))
    x = image(arch.resolution, batch=2)
    y = run_active(net, arch, x)
    for b in range(2):
        assert_agree(run_active(net, arch, x[b : b + 1])[0], y[b])


# ---- training: shared weights are slices ---------------------------------------------------------------
TINY_ARCH = dict(
    space="efficientformerv2-tiny",
    resolution=224,
    depths=[1, 1, 2, 2],
    widths=[32, 48, 96, 176],
    ratios=[[4], [3], [3, 4], [4, 4]],
    mixers=[["none"], ["none"], ["mhsa", "none"], ["additive", "none"]],
)


def test_training_updates_shared_stats_and_grads_only_leading_slices():
    torch.manual_seed(0)
    tnet = supernet.build("efficientformerv2-tiny")
    randomize_(tnet, seed=1)
    arch = Arch.from_dict(TINY_ARCH)
    before = {k: v.clone() for k, v in tnet.state_dict().items()}
    tnet.set_active(arch)
    tnet.train()
    x = image(224, batch=2)
    logits, dist = tnet(x)
    (logits.sum() + dist.sum()).backward()

    # FFN of stage 2 block 0: slot built for width 64, ratio 4 (hidden 256); active width 48, ratio 3 (hidden 144)
    ffn = tnet.slots["stage2_block0_ffn"]["ffn"]
    key = "slots.stage2_block0_ffn.ffn."
    for bn_name, n in (("fc1.bn", 144), ("mid.bn", 144), ("fc2.bn", 48)):
        for stat in ("running_mean", "running_var"):
            old, new = before[key + f"{bn_name}.{stat}"], tnet.state_dict()[key + f"{bn_name}.{stat}"]
            assert not torch.equal(new[:n], old[:n]), (bn_name, stat)
            assert (new[:n] != old[:n]).all(), (bn_name, stat)
            assert torch.equal(new[n:], old[n:]), (bn_name, stat)
        assert ffn.get_submodule(bn_name).num_batches_tracked.item() == before[key + f"{bn_name}.num_batches_tracked"] + 1

    w = ffn.fc1.conv.weight.grad
    assert w.shape == (256, 64, 1, 1)
    assert w[:144, :48].abs().sum() > 0 and (w[:144, :48] != 0).float().mean() > 0.9
    assert w[144:].abs().sum() == 0 and w[:, 48:].abs().sum() == 0
    g = ffn.fc2.conv.weight.grad
    assert g[:48, :144].abs().sum() > 0 and g[48:].abs().sum() == 0 and g[:, 144:].abs().sum() == 0
    assert ffn.layer_scale.grad[48:].abs().sum() == 0 and ffn.layer_scale.grad[:48].abs().sum() > 0

    # active mixers get gradients in their leading slices; unused variants and unused blocks get none
    add = tnet.slots["stage4_block0_mixer"]["additive"]
    assert add.to_query.weight.grad[:176, :176].abs().sum() > 0
    assert add.to_query.weight.grad[176:].abs().sum() == 0 and add.to_query.weight.grad[:, 176:].abs().sum() == 0
    assert add.w_g.grad[176:].abs().sum() == 0
    assert all(p.grad is None for p in tnet.slots["stage4_block0_mixer"]["separable"].parameters())
    mhsa = tnet.slots["stage3_block0_mixer"]["mhsa"]
    assert mhsa.q.conv.weight.grad[:, :96].abs().sum() > 0 and mhsa.q.conv.weight.grad[:, 96:].abs().sum() == 0
    assert all(p.grad is None for p in tnet.slots["stage3_block1_mixer"].parameters())
    assert all(p.grad is None for p in tnet.slots["stage2_block1_ffn"].parameters())
    assert all(p.grad is None for p in tnet.slots["stage3_block2_ffn"].parameters())
    # an inactive block's statistics are untouched
    for k, v in tnet.state_dict().items():
        if k.startswith("slots.stage3_block2_ffn."):
            assert torch.equal(v, before[k]), k


def test_training_mode_active_matches_extracted_training_mode():
    torch.manual_seed(0)
    tnet = supernet.build("efficientformerv2-tiny")
    randomize_(tnet, seed=2)
    arch = Arch.from_dict(TINY_ARCH)
    tnet.set_active(arch)
    tnet.train()
    model = tnet.extract(arch)
    assert model.training
    x = image(224, batch=2, seed=5)
    with torch.no_grad():
        a, b = tnet(x), model(x)
    assert isinstance(a, tuple) and isinstance(b, tuple)
    for u, v in zip(a, b):
        assert_agree(v, u)


# ---- arches from another space -------------------------------------------------------------------------
def test_set_active_rejects_arch_not_offered(net, tmp_path):
    # a user's own space: the tiny one with width 128 in stage 3, which the default space does not offer
    tiny_text = (Path(search_spaces.__file__).parent / "spaces" / "efficientformerv2-tiny.yaml").read_text()
    own = tmp_path / "own.yaml"
    own.write_text(
        tiny_text.replace("widths: [96, 120]", "widths: [96, 128]").replace("name: efficientformerv2-tiny", "name: own")
    )
    search_spaces.load(str(own))  # a file the user names explicitly (an architecture file alone may not)
    arch = Arch.from_dict({**TINY_ARCH, "space": str(own), "widths": [32, 48, 128, 176]})
    assert search_spaces.load(str(own)).contains(arch) and not SPACE.contains(arch)
    active = net.active
    with pytest.raises(SpaceError, match="128"):
        net.set_active(arch)
    assert net.active == active  # a rejected arch leaves the supernet as it was
    with pytest.raises(SpaceError):
        net.extract(arch)
    bigger = Arch.from_dict({**TINY_ARCH, "widths": [32, 64, 96, 224]})
    assert search_spaces.load("efficientformerv2-tiny").contains(bigger)
    # 64 is offered in stage 2 of the default space, 224 in stage 4: accepted and equal to the same arch there
    net.set_active(bigger)
    same = Arch.from_dict({**bigger.to_dict(), "space": "efficientformerv2"})
    x = image(224)
    assert_agree(run_active(net, bigger, x), run_active(net, same, x))


def test_set_active_rejects_wrong_stage_count(net):
    three = Arch(
        "efficientformerv2", 224, (2, 2, 6), (32, 48, 96), ((4, 4), (4, 4), (4,) * 6), (("none",) * 2,) * 2 + (("none",) * 6,)
    )
    with pytest.raises(SpaceError):
        net.set_active(three)


def test_active_plan_sees_dtype_change_and_loaded_weights():
    """After set_active, .double() and load_state_dict must reach the running subnet (no stale tensors)."""
    torch.manual_seed(0)
    a, b = supernet.build("efficientformerv2-tiny"), supernet.build("efficientformerv2-tiny")
    randomize_(a, seed=3)
    randomize_(b, seed=4)
    arch = Arch.from_dict(TINY_ARCH)
    x = image(224, seed=6)
    for model in (a, b):
        model.set_active(arch)
        model.eval()
    with torch.no_grad():
        y_b = b(x)
        a.load_state_dict(b.state_dict())
        assert_agree(a(x), y_b)
        a.double()
        y64 = a(x.double())
        assert y64.dtype == torch.float64
        extracted = a.extract(arch).eval()
        assert next(extracted.parameters()).dtype == torch.float64
        torch.testing.assert_close(extracted(x.double()), y64, atol=1e-12, rtol=0)
        assert_agree(y64.float(), y_b)
