"""Search spaces and the architecture type: loading, presets, files, ids, encoding, variation, errors."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import pytest
import yaml

import search_spaces
from search_spaces import Arch, SpaceError

DEFAULT = "efficientformerv2"
TINY = "efficientformerv2-tiny"

S0_ID = "77e20da4602d"  # regression: the id of the published S0 must never change

# The published variants (docs/models.md, section 1).
PUBLISHED = {
    "s0": dict(depths=(2, 2, 6, 4), widths=(32, 48, 96, 176), vit_num=2, r3=(4, 3, 3, 3, 4, 4), r4=(4, 3, 3, 4)),
    "s1": dict(depths=(3, 3, 9, 6), widths=(32, 48, 120, 224), vit_num=2, r3=(4, 4, 3, 3, 3, 3, 4, 4, 4), r4=(4, 4, 3, 3, 4, 4)),
    "s2": dict(
        depths=(4, 4, 12, 8),
        widths=(32, 64, 144, 288),
        vit_num=4,
        r3=(4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
        r4=(4, 4, 3, 3, 3, 3, 4, 4),
    ),
    "l": dict(
        depths=(5, 5, 15, 10),
        widths=(40, 80, 192, 384),
        vit_num=6,
        r3=(4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
        r4=(4, 4, 4, 3, 3, 3, 3, 4, 4, 4),
    ),
}

S0_YAML_LINES = [
    "space: efficientformerv2",
    "resolution: 224",
    "depths: [2, 2, 6, 4]",
    "widths: [32, 48, 96, 176]",
    "ratios: [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]",
    "mixers: [[none, none], [none, none], [none, none, none, none, mhsa, mhsa], [none, none, mhsa, mhsa]]",
]

SMALL_SPACE = """\
name: small-test
resolutions: [64, 128]
stages:
  - depths: [1, 2]
    widths: [16, 24]
    ratios: [2, 4]
    mixers: [none, additive]
  - depths: [1, 3]
    widths: [32]
    ratios: [4]
    mixers: [none, mhsa, separable]
"""


def write(path: Path, lines: list[str] | str) -> Path:
    path.write_text(lines if isinstance(lines, str) else "\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_error_at(path: Path, line: int, *words: str, loader=Arch.from_file):
    with pytest.raises(SpaceError) as info:
        loader(path)
    message = str(info.value)
    assert re.search(rf"\bline {line}\b", message), f"expected 'line {line}' in {message!r}"
    for word in words:
        assert word in message, f"expected {word!r} in {message!r}"
    return message


# ---- shipped spaces -------------------------------------------------------------------------------
def test_shipped_spaces_are_listed_and_load(space, tiny):
    names = search_spaces.list_spaces()
    assert DEFAULT in names and TINY in names
    assert space.name == DEFAULT and tiny.name == TINY
    assert len(space.stages) == 4 and len(tiny.stages) == 4
    # The default space holds the published models' choices.
    assert space.resolutions == (192, 224, 256)
    assert space.stages[3].downsample == "attention" and space.stages[2].mhsa_stride == 2
    assert set(space.stages[2].mixers) == {"none", "mhsa", "separable", "additive", "sepvit"}


def test_load_by_path_matches_load_by_name(space):
    path = Path(search_spaces.registry.SPACES_DIR) / f"{DEFAULT}.yaml"
    by_path = search_spaces.load(str(path))
    assert by_path.name == space.name
    assert by_path.size() == space.size()
    assert by_path.stages == space.stages


def test_unknown_space_name_is_a_space_error():
    with pytest.raises(SpaceError, match="no-such-space"):
        search_spaces.load("no-such-space")


def test_tiny_space_size_in_range_and_equals_per_stage_brute_force(tiny):
    size = tiny.size()
    assert 1e4 < size < 1e6
    assert size == 276_480  # the figure its file documents
    # Brute force: every combination of one stage's genes, reduced to the distinct stage configurations
    # (genes of blocks past the depth are ignored); stages and the resolution combine independently.
    genes = tiny.genes()
    total = len(genes[0].choices)
    for s in range(1, len(tiny.stages) + 1):
        stage_genes = [gene.choices for gene in genes if gene.stage == s]
        distinct = set()
        for combo in itertools.product(*stage_genes):
            depth, width, blocks = combo[0], combo[1], combo[2:]
            ratios, mixers = blocks[0::2][:depth], blocks[1::2][:depth]
            distinct.add((depth, width, ratios, mixers))
        total *= len(distinct)
    assert total == size


def test_size_equals_full_decode_enumeration(tmp_path):
    """Decode every gene vector of a small space: the distinct architectures number exactly size()."""
    small = search_spaces.load(str(write(tmp_path / "small.yaml", SMALL_SPACE)))
    genes = small.genes()
    archs = set()
    for codes in itertools.product(*(range(len(gene.choices)) for gene in genes)):
        arch = small.decode(list(codes))
        archs.add(arch)
    assert small.size() == len(archs)
    # hand count: 2 resolutions * stage 1: 2 widths * (4 + 4^2) * stage 2: (3 + 3^3)
    assert small.size() == 2 * (2 * (4 + 16)) * (3 + 27) == 2400
    assert all(small.contains(a) for a in archs)
    assert len({a.id for a in archs}) == len(archs)


def test_default_space_size_formula(space):
    expected = len(space.resolutions)
    for st in space.stages:
        per_block = len(st.ratios) * len(st.mixers)
        expected *= len(st.widths) * sum(per_block**d for d in st.depths)
    assert space.size() == expected
    assert space.size() > 1e20


# ---- presets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["s0", "s1", "s2", "l"])
def test_presets_reproduce_published_models(space, name):
    ref = PUBLISHED[name]
    arch = space.preset(name)
    assert arch.resolution == 224
    assert arch.depths == ref["depths"]
    assert arch.widths == ref["widths"]
    assert arch.ratios[0] == (4,) * ref["depths"][0] and arch.ratios[1] == (4,) * ref["depths"][1]
    assert arch.ratios[2] == ref["r3"] and arch.ratios[3] == ref["r4"]
    vit = ref["vit_num"]
    assert arch.mixers[0] == ("none",) * ref["depths"][0]
    assert arch.mixers[1] == ("none",) * ref["depths"][1]
    for s in (2, 3):
        d = ref["depths"][s]
        assert arch.mixers[s] == ("none",) * (d - vit) + ("mhsa",) * vit
    assert space.contains(arch)
    # aliases: the long name, and case does not matter
    assert space.preset(f"efficientformerv2_{name}") == arch
    assert space.preset(f"EfficientFormerV2_{name.upper()}") == arch
    assert name in space.preset_names


def test_unknown_preset_is_a_space_error(space, tiny):
    with pytest.raises(SpaceError, match="s9"):
        space.preset("s9")
    with pytest.raises(SpaceError):
        tiny.preset("s0")


# ---- files and ids ----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_arch_file_round_trip(space, tmp_path, suffix):
    rng = random.Random(7)
    archs = [space.preset(p) for p in ("s0", "s1", "s2", "l")] + [space.sample(rng) for _ in range(10)]
    for i, arch in enumerate(archs):
        path = tmp_path / f"arch{i}{suffix}"
        arch.save(path)
        if suffix == ".json":
            assert json.loads(path.read_text())["widths"] == list(arch.widths)
        else:
            data = yaml.safe_load(path.read_text())
            assert data["depths"] == list(arch.depths)
            assert data["mixers"] == [list(m) for m in arch.mixers]
        back = Arch.from_file(path)
        assert back == arch
        assert back.id == arch.id
        assert hash(back) == hash(arch)
        assert Arch.from_yaml(path) == arch and Arch.from_json(path) == arch


def test_spec_example_file_loads_as_s0(space, tmp_path):
    arch = Arch.from_file(write(tmp_path / "s0.yaml", S0_YAML_LINES))
    assert arch == space.preset("s0")
    assert arch.id == S0_ID


def test_ids_are_stable_and_distinct(space, tiny):
    s0 = space.preset("s0")
    assert s0.id == S0_ID
    assert re.fullmatch(r"[0-9a-f]{12}", s0.id)
    preset_ids = {space.preset(p).id for p in ("s0", "s1", "s2", "l")}
    assert len(preset_ids) == 4
    rng = random.Random(3)
    archs = {space.sample(rng) for _ in range(300)} | {tiny.sample(rng) for _ in range(300)}
    ids = {a.id for a in archs}
    assert len(ids) == len(archs)
    # A one-gene change changes the id.
    changed = Arch(s0.space, s0.resolution, s0.depths, s0.widths, s0.ratios[:3] + ((4, 3, 3, 3),), s0.mixers)
    assert changed.id != s0.id
    # Rebuilding the same value gives the same id (no dependence on object identity).
    assert Arch.from_dict(s0.to_dict()).id == S0_ID


def test_id_does_not_depend_on_how_the_space_is_referenced(space):
    s0 = space.preset("s0")
    path = str(Path(search_spaces.registry.SPACES_DIR) / f"{DEFAULT}.yaml")
    by_path = Arch.from_dict({**s0.to_dict(), "space": path})
    assert by_path.space == path
    assert by_path.id == S0_ID


def test_same_choices_in_two_spaces_have_different_ids(space, tiny):
    arch = tiny.sample(random.Random(0))
    data = arch.to_dict()
    data["space"] = DEFAULT
    data["widths"] = [32, 48, 96, 176]
    other_tiny = Arch.from_dict({**data, "space": TINY})
    other_default = Arch.from_dict(data)
    assert other_tiny.to_dict() | {"space": DEFAULT} == other_default.to_dict()
    assert other_tiny.id != other_default.id


# ---- encoding -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [DEFAULT, TINY])
def test_encode_decode_round_trip(name):
    sp = search_spaces.load(name)
    genes = sp.genes()
    rng = random.Random(11)
    archs = [sp.sample(rng) for _ in range(300)] + [sp.largest(), sp.smallest()]
    if name == DEFAULT:
        archs += [sp.preset(p) for p in ("s0", "s1", "s2", "l")]
    for arch in archs:
        codes = sp.encode(arch)
        assert arch.encode() == codes
        assert len(codes) == len(genes)
        assert all(0 <= c < len(gene.choices) for c, gene in zip(codes, genes))
        assert sp.decode(codes) == arch


def test_decode_rejects_bad_codes(tiny):
    codes = tiny.encode(tiny.largest())
    with pytest.raises(SpaceError):
        tiny.decode(codes[:-1])
    bad = list(codes)
    bad[1] = 5  # s1.depth has 2 choices
    with pytest.raises(SpaceError, match="s1.depth"):
        tiny.decode(bad)


def test_encode_rejects_arch_outside_space(space, tiny):
    with pytest.raises(SpaceError):
        tiny.encode(space.preset("s0"))


# ---- sampling and variation -----------------------------------------------------------------------
def _sequence(sp, seed: int, n: int = 40):
    rng = random.Random(seed)
    out = []
    parent = sp.sample(rng)
    for _ in range(n):
        a, b = sp.sample(rng), sp.sample(rng)
        out += [a, sp.mutate(a, rng), sp.crossover(a, b, rng), parent]
        parent = sp.mutate(parent, rng, prob=0.3)
    return out


@pytest.mark.parametrize("name", [DEFAULT, TINY])
def test_sample_mutate_crossover_stay_in_space(name):
    sp = search_spaces.load(name)
    rng = random.Random(5)
    for _ in range(200):
        a, b = sp.sample(rng), sp.sample(rng)
        assert sp.contains(a) and sp.contains(b)
        m = sp.mutate(a, rng)
        assert sp.contains(m)
        assert m != a
        assert a.mutate(rng, prob=0.5) != a
        c = sp.crossover(a, b, rng)
        assert sp.contains(c)
        c2 = a.crossover(b, rng)
        assert sp.contains(c2)


def test_mutation_always_differs_at_small_probability(tiny, space):
    rng = random.Random(0)
    for sp in (tiny, space):
        for arch in (sp.smallest(), sp.largest()):
            for _ in range(50):
                child = sp.mutate(arch, rng, prob=0.01)
                assert child != arch and sp.contains(child)


@pytest.mark.parametrize("prob", [0.001, 0.0])
def test_mutation_always_differs_even_with_tiny_probability(tiny, space, prob):
    rng = random.Random(0)
    for sp in (tiny, space):
        for arch in (sp.smallest(), sp.largest(), sp.sample(rng)):
            for _ in range(30):
                child = sp.mutate(arch, rng, prob=prob)
                assert child != arch and sp.contains(child)
                if prob == 0.0 and child.depths == arch.depths:  # a forced single-gene change
                    diff = [i for i, (u, v) in enumerate(zip(sp.encode(arch), sp.encode(child))) if u != v]
                    assert len(diff) == 1


@pytest.mark.parametrize("name", [DEFAULT, TINY])
def test_same_seed_same_sequence(name):
    sp = search_spaces.load(name)
    first, second = _sequence(sp, 0), _sequence(sp, 0)
    assert first == second
    assert _sequence(sp, 1) != first
    # an int seed behaves like random.Random(seed)
    assert sp.sample(42) == sp.sample(random.Random(42))


def test_sample_covers_every_choice(space):
    rng = random.Random(2)
    seen = [dict(depths=set(), widths=set(), ratios=set(), mixers=set()) for _ in space.stages]
    resolutions = set()
    for _ in range(1500):
        a = space.sample(rng)
        resolutions.add(a.resolution)
        for s in range(4):
            seen[s]["depths"].add(a.depths[s])
            seen[s]["widths"].add(a.widths[s])
            seen[s]["ratios"].update(a.ratios[s])
            seen[s]["mixers"].update(a.mixers[s])
    assert resolutions == set(space.resolutions)
    for st, got in zip(space.stages, seen):
        assert got["depths"] == set(st.depths)
        assert got["widths"] == set(st.widths)
        assert got["ratios"] == set(st.ratios)
        assert got["mixers"] == set(st.mixers)


def test_mutating_depth_adds_and_removes_blocks(space):
    rng = random.Random(9)
    grew = shrank = 0
    for _ in range(300):
        parent = space.sample(rng)
        child = space.mutate(parent, rng, prob=0.5)
        assert space.contains(child)
        for s in range(4):
            assert len(child.ratios[s]) == child.depths[s]
            assert len(child.mixers[s]) == child.depths[s]
            step = child.depths[s] - parent.depths[s]
            if step:
                choices = space.stages[s].depths
                # depth moves to a neighbouring choice
                assert abs(choices.index(child.depths[s]) - choices.index(parent.depths[s])) == 1
                grew += step > 0
                shrank += step < 0
        # the layer plan follows the new depths
        n_ffn = sum(1 for spec in child.layers() if spec.kind == "ffn")
        assert n_ffn == sum(child.depths)
    assert grew > 20 and shrank > 20


def test_crossover_takes_every_gene_from_a_parent(space):
    rng = random.Random(4)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        c = space.crossover(a, b, rng)
        assert c.resolution in (a.resolution, b.resolution)
        for s in range(4):
            assert c.depths[s] in (a.depths[s], b.depths[s])
            assert c.widths[s] in (a.widths[s], b.widths[s])
            assert len(c.ratios[s]) == c.depths[s] == len(c.mixers[s])
            for i in range(c.depths[s]):
                donors = [(p.ratios[s][i], p.mixers[s][i]) for p in (a, b) if i < p.depths[s]]
                assert (c.ratios[s][i], c.mixers[s][i]) in donors
    same = space.preset("s1")
    assert space.crossover(same, same, rng) == same


def test_largest_and_smallest(space):
    big, small = space.largest(), space.smallest()
    assert big.depths == (5, 5, 15, 10) and big.widths == (48, 80, 192, 384) and big.resolution == 256
    assert all(r == 4 for st in big.ratios for r in st)
    assert big.mixers[2][0] == "mhsa" and big.mixers[0][0] == "sepvit" and big.mixers[3][0] == "mhsa"
    assert small.depths == (1, 1, 2, 2) and small.widths == (16, 32, 64, 128) and small.resolution == 192
    assert all(m == "none" for st in small.mixers for m in st)


# ---- validation of architecture files -------------------------------------------------------------
def test_width_not_offered_names_key_and_line(tmp_path):
    lines = list(S0_YAML_LINES)
    lines[3] = "widths: [32, 50, 96, 176]"
    msg = assert_error_at(write(tmp_path / "a.yaml", lines), 4, "widths", "50")
    assert str(tmp_path / "a.yaml") in msg


def test_unknown_mixer_names_key_and_line(tmp_path):
    lines = S0_YAML_LINES[:5] + [
        "mixers:",
        "  - [none, none]",
        "  - [none, none]",
        "  - [none, none, none, none, mhsa, mhsa]",
        "  - [none, none, swin, mhsa]",
    ]
    assert_error_at(write(tmp_path / "a.yaml", lines), 10, "mixers", "swin")


def test_unknown_mixer_in_json_names_line(tmp_path):
    data = dict(
        space=DEFAULT,
        resolution=224,
        depths=[2, 2, 6, 4],
        widths=[32, 48, 96, 176],
        ratios=[[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]],
        mixers=[["none", "none"], ["none", "none"], ["none"] * 4 + ["mhsa"] * 2, ["none", "none", "mhsa", "sepvit"]],
    )
    text = json.dumps(data, indent=1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "sepvit" in t)
    assert line > 10
    assert_error_at(write(tmp_path / "a.json", text), line, "mixers", "sepvit")


def test_wrong_ratio_list_length_names_key_and_line(tmp_path):
    lines = S0_YAML_LINES[:4] + [
        "ratios:",
        "  - [4, 4]",
        "  - [4, 4]",
        "  - [4, 3, 3, 3, 4, 4]",
        "  - [4, 3, 3]",
        S0_YAML_LINES[5],
    ]
    assert_error_at(write(tmp_path / "a.yaml", lines), 9, "ratios")


def test_ratio_not_offered_names_line(tmp_path):
    lines = list(S0_YAML_LINES)
    lines[4] = "ratios: [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 5]]"
    assert_error_at(write(tmp_path / "a.yaml", lines), 5, "ratios", "5")


def test_malformed_yaml_names_line(tmp_path):
    lines = S0_YAML_LINES[:2] + ["depths: [2, 2, 6, 4", "widths: [32, 48, 96, 176]"]
    assert_error_at(write(tmp_path / "a.yaml", lines), 4, "malformed")


def test_unknown_key_names_key_and_line(tmp_path):
    lines = S0_YAML_LINES[:4] + ["kernel: 3"] + S0_YAML_LINES[4:]
    assert_error_at(write(tmp_path / "a.yaml", lines), 5, "kernel")


def test_other_arch_file_errors(tmp_path, space):
    with pytest.raises(SpaceError):
        Arch.from_file(tmp_path / "missing.yaml")
    with pytest.raises(SpaceError, match="empty"):
        Arch.from_file(write(tmp_path / "empty.yaml", ""))
    with pytest.raises(SpaceError, match="mixers"):
        Arch.from_file(write(tmp_path / "short.yaml", S0_YAML_LINES[:5]))
    lines = list(S0_YAML_LINES)
    lines[1] = "resolution: 200"
    assert_error_at(write(tmp_path / "res.yaml", lines), 2, "resolution")
    lines = list(S0_YAML_LINES)
    lines[0] = "space: no-such-space"
    with pytest.raises(SpaceError, match="no-such-space"):
        Arch.from_file(write(tmp_path / "space.yaml", lines))
    # the error type is a ValueError, as users catch it
    assert issubclass(SpaceError, ValueError)


# ---- validation of space files ------------------------------------------------------------------------
SPACE_4_STAGES = """\
name: four
resolutions: [128, 160]
stages:
  - depths: [1, 2]
    widths: [16]
    ratios: [4]
    mixers: [none]
  - depths: [1]
    widths: [32]
    ratios: [4]
    mixers: [none]
  - depths: [1]
    widths: [48]
    ratios: [4]
    mixers: [none, mhsa]
  - depths: [1]
    widths: [64, 80]
    ratios: [4]
    mixers: [none]
"""


def test_valid_custom_space_loads(tmp_path):
    sp = search_spaces.load(str(write(tmp_path / "four.yaml", SPACE_4_STAGES)))
    assert sp.name == "four"
    assert sp.size() == 2 * 2 * 1 * 2 * 2


def test_space_unknown_key_names_line(tmp_path):
    text = SPACE_4_STAGES.replace("resolutions: [128, 160]\n", "resolutions: [128, 160]\nfoo: 1\n")
    assert_error_at(write(tmp_path / "s.yaml", text), 3, "foo", loader=search_spaces.load)


def test_space_unknown_stage_key_names_line(tmp_path):
    text = SPACE_4_STAGES.replace("    widths: [48]\n", "    widths: [48]\n    kernel: 3\n")
    assert_error_at(write(tmp_path / "s.yaml", text), 14, "kernel", loader=search_spaces.load)


def test_space_resolution_not_multiple_of_32_names_line(tmp_path):
    text = SPACE_4_STAGES.replace("resolutions: [128, 160]", "resolutions:\n  - 128\n  - 208")
    msg = assert_error_at(write(tmp_path / "s.yaml", text), 4, "208", loader=search_spaces.load)
    assert "32" in msg


def test_space_resolution_error_points_at_the_item_in_file_order(tmp_path):
    text = SPACE_4_STAGES.replace("resolutions: [128, 160]", "resolutions:\n  - 208\n  - 128")
    assert_error_at(write(tmp_path / "s.yaml", text), 3, "208", loader=search_spaces.load)


def test_space_stride_attention_needs_an_even_attention_grid(tmp_path):
    """Stride attention in stage 4 halves a res/32 map once more, so resolutions must be multiples of 64."""
    text = SPACE_4_STAGES.replace(
        "    widths: [64, 80]\n    ratios: [4]\n    mixers: [none]\n",
        "    widths: [64, 80]\n    ratios: [4]\n    mixers: [none, mhsa]\n    mhsa_stride: 2\n",
    )
    assert "mhsa_stride: 2" in text
    text = text.replace("resolutions: [128, 160]", "resolutions: [128, 160]\nnum_classes: 10")
    assert_error_at(write(tmp_path / "s.yaml", text), 2, "160", "64", loader=search_spaces.load)
    ok = search_spaces.load(str(write(tmp_path / "ok.yaml", text.replace("[128, 160]", "[128, 192]"))))
    assert ok.stages[3].mhsa_stride == 2
    mhsa = [spec for spec in ok.layers(ok.largest()) if spec.stage == 4 and spec.kind == "mhsa"]
    assert mhsa and all(spec.stride == 2 and spec.grid % 2 == 0 for spec in mhsa)
    assert mhsa[0].key == "mhsa:c80:g6:s2"


def test_space_sepvit_settings(tmp_path):
    """Heads and window per stage reach the layer specs and keys; a map smaller than the window is one
    window (a derived space at a small resolution); a stage whose map never holds two windows is refused."""
    text = SPACE_4_STAGES.replace(
        "    widths: [16]\n    ratios: [4]\n    mixers: [none]\n",
        "    widths: [16]\n    ratios: [4]\n    mixers: [none, sepvit]\n    sepvit_heads: 2\n    sepvit_window: 5\n",
    )
    sp = search_spaces.load(str(write(tmp_path / "ok.yaml", text)))
    assert (sp.stages[0].sepvit_heads, sp.stages[0].sepvit_window) == (2, 5)
    assert sp.describe()["stages"][0]["sepvit_heads"] == 2
    arch = sp.make(128, [1, 1, 1, 1], [16, 32, 48, 64], [[4]] * 4, [["sepvit"], ["none"], ["mhsa"], ["none"]])
    (spec,) = [spec for spec in arch.layers() if spec.kind == "sepvit"]
    assert spec.key == "sepvit:c16:g32:h2:w5" and (spec.heads, spec.window) == (2, 5)
    small = sp.derive(resolutions=[32])  # stage 1's map is 8x8: two 5x5 windows a side, padded
    layers = small.layers(small.make(32, arch.depths, arch.widths, arch.ratios, arch.mixers))
    assert [(x.grid, x.window) for x in layers if x.kind == "sepvit"] == [(8, 5)]
    assert sp.stages[0].mixer_spec("sepvit", 16, 4, name="x", stage=1).window == 4  # a map under the window: one window
    bad = {
        "sepvit_heads: 2": ("sepvit_heads: 0", "positive"),
        "sepvit_window: 5": ("sepvit_window: 1", "2 to 64"),
    }
    for old, (new, needle) in bad.items():
        assert_error_at(
            write(tmp_path / "bad.yaml", text.replace(old, new)), 8 if "heads" in old else 9, needle, loader=search_spaces.load
        )
    assert_error_at(
        write(tmp_path / "h.yaml", text.replace("sepvit_heads: 2", "sepvit_heads: 33")),
        8,
        "at most 32",
        loader=search_spaces.load,
    )
    # stage 4's map is 5x5 at 160 px: one 7x7 window, plain attention, so the file is refused
    one_window = SPACE_4_STAGES.replace(
        "    widths: [64, 80]\n    ratios: [4]\n    mixers: [none]\n",
        "    widths: [64, 80]\n    ratios: [4]\n    mixers: [none, sepvit]\n",
    )
    assert_error_at(write(tmp_path / "one.yaml", one_window), 19, "several windows", "mhsa", loader=search_spaces.load)


def test_space_duplicate_choice_names_line(tmp_path):
    text = SPACE_4_STAGES.replace("    widths: [64, 80]\n", "    widths:\n      - 64\n      - 80\n      - 64\n")
    assert_error_at(write(tmp_path / "s.yaml", text), 20, "duplicate", "64", loader=search_spaces.load)


def test_space_other_errors(tmp_path):
    text = SPACE_4_STAGES.replace("mixers: [none, mhsa]", "mixers: [none, swin]")
    assert_error_at(write(tmp_path / "m.yaml", text), 15, "swin", loader=search_spaces.load)
    text = SPACE_4_STAGES.replace("name: four\n", "")
    with pytest.raises(SpaceError, match="name"):
        search_spaces.load(str(write(tmp_path / "n.yaml", text)))
    with pytest.raises(SpaceError):
        search_spaces.load(str(tmp_path / "missing.yaml"))


def test_arch_of_custom_space_by_path(tmp_path):
    path = write(tmp_path / "four.yaml", SPACE_4_STAGES)
    sp = search_spaces.load(str(path))
    arch = sp.sample(random.Random(0))
    assert arch.space == str(path)
    arch.save(tmp_path / "arch.yaml")
    back = Arch.from_file(tmp_path / "arch.yaml")
    assert back == arch and back.id == arch.id and back.search_space.name == "four"
    data = arch.to_dict()
    data["widths"] = [16, 32, 48, 96]
    with pytest.raises(SpaceError, match="96"):
        Arch.from_dict(data)


# ---- layer plan ---------------------------------------------------------------------------------------
def test_s0_layers(space):
    layers = space.preset("s0").layers()
    kinds = [spec.kind for spec in layers]
    assert kinds == (
        ["stem", "ffn", "ffn", "conv_down", "ffn", "ffn", "conv_down"]
        + ["ffn"] * 4
        + ["mhsa", "ffn", "mhsa", "ffn"]
        + ["attn_down", "ffn", "ffn", "mhsa", "ffn", "mhsa", "ffn", "head"]
    )
    keys = [spec.key for spec in layers]
    assert keys[0] == "stem:c3-32:g224:s4"
    assert keys[1] == keys[2] == "ffn:c32:g56:e4"
    assert keys[3] == "conv_down:c32-48:g56:s2"
    assert keys[4] == "ffn:c48:g28:e4"
    assert keys[6] == "conv_down:c48-96:g28:s2"
    assert keys[7:11] == ["ffn:c96:g14:e4", "ffn:c96:g14:e3", "ffn:c96:g14:e3", "ffn:c96:g14:e3"]
    assert keys[11] == keys[13] == "mhsa:c96:g14:s2"
    assert keys[15] == "attn_down:c96-176:g14:s2"
    assert keys[18] == keys[20] == "mhsa:c176:g7"
    assert keys[19] == "ffn:c176:g7:e3" and keys[21] == "ffn:c176:g7:e4"
    assert keys[-1] == "head:c176-1000:g7:dist"
    # grids follow the strides
    assert [spec.grid for spec in layers if spec.kind in ("conv_down", "attn_down")] == [56, 28, 14]
    assert [spec.grid_out for spec in layers if spec.kind in ("stem", "conv_down", "attn_down")] == [56, 28, 14, 7]
    names = [spec.name for spec in layers]
    assert len(set(names)) == len(names)
    assert "stage3_block4_mixer" in names and "stage3_block4_ffn" in names


def test_layers_follow_resolution(space):
    s0 = space.preset("s0")
    at256 = Arch.from_dict({**s0.to_dict(), "resolution": 256})
    keys = [spec.key for spec in at256.layers()]
    assert "mhsa:c96:g16:s2" in keys and "mhsa:c176:g8" in keys and keys[-1] == "head:c176-1000:g8:dist"
    assert at256.id != s0.id


def test_architecture_and_space_files_accept_the_same_mixer_spellings(tmp_path):
    """One validator: YAML's `no` (false) and `null` mean mixer none in both kinds of file."""
    text = SPACE_4_STAGES.replace("mixers: [none, mhsa]", "mixers: [no, mhsa]")
    sp = search_spaces.load(str(write(tmp_path / "s.yaml", text)))
    assert sp.stages[2].mixers == ("none", "mhsa")
    data = sp.largest().to_dict()
    data["mixers"] = [[None] * len(m) for m in data["mixers"]]
    data["mixers"][2] = [False]
    assert all(m == ("none",) * len(m) for m in Arch.from_dict(data).mixers)
    with pytest.raises(SpaceError, match="unknown mixer"):
        search_spaces.load(str(write(tmp_path / "bad.yaml", text.replace("[no, mhsa]", "[yes, mhsa]"))))


def test_genes_are_typed():
    tiny = search_spaces.load(TINY)
    genes = tiny.genes()
    assert genes[0].name == "resolution" and genes[0].stage is None
    block = next(g for g in genes if g.block is not None)
    assert (block.field, block.stage, block.block, block.name) == ("ratio", 1, 0, "s1.b0.ratio")
    assert tiny.gene_index()["mixer", 4, 2].name == "s4.b2.mixer"
    assert [g.active((1, 1, 2, 2)) for g in genes if g.stage == 3 and g.block == 2] == [False, False]
