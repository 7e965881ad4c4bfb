"""Search strategies: multi-objective evolution, Optuna's samplers, and EfficientFormerV2's action search.

Each strategy proposes architectures and hands them to :class:`nas.search.SearchContext`, which
evaluates (accuracy only within budget), records one trial per architecture and stops at the run's
trial total. Every random choice comes from a generator seeded by the run's seed and the generation
(or step), and proposals depend only on trials of earlier generations, so a resumed run proposes
exactly what the uninterrupted run would have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BadInput, Infeasible
from .pareto import crowding_distance, pareto_mask, pareto_ranks

if TYPE_CHECKING:
    from .search import SearchContext

STRATEGIES = ("evolution", "optuna", "actions")
SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random")


def select_survivors(costs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NSGA-II survival: whole non-dominated fronts in order, the last one cut by crowding distance.
    Returns the chosen row indices and, for them, their front rank and crowding distance."""
    n = len(costs)
    ranks = pareto_ranks(costs)
    chosen, crowd = [], []
    for rank in np.unique(ranks):
        idx = np.flatnonzero(ranks == rank)
        distance = crowding_distance(costs[idx])
        if len(chosen) + len(idx) > k:
            order = np.argsort(-distance, kind="stable")[: k - len(chosen)]
            idx, distance = idx[order], distance[order]
        chosen.extend(idx.tolist())
        crowd.extend(distance.tolist())
        if len(chosen) >= k:
            break
    chosen_arr = np.array(chosen[:n], dtype=int)
    return chosen_arr, ranks[chosen_arr], np.array(crowd[: len(chosen_arr)])


class Evolution:
    """Multi-objective evolution (NSGA-II survival over all evaluated architectures) with operators
    that understand the architecture: crossover of whole stages and blocks, mutation that adds or drops
    blocks and moves widths and ratios to neighbouring choices and swaps mixers, and a repair step that
    shrinks an over-budget child with the space's shrinking actions, so every evaluated architecture is
    within budget.

    Only accuracy is expensive: every other objective of any candidate is known exactly before it is
    evaluated. So once two generations are in, most of each generation (`model_share`) is chosen from a
    large pool of candidates near the front (every one-gene neighbour of its members, and
    `pool_children` crossover children per member) by expected hypervolume improvement under an
    accuracy surrogate refitted on all trials so far (``nas.surrogate``). The rest comes from Pareto
    local search (`local_share` of it) and from tournament selection, crossover and mutation, which
    keep exploring where the surrogate is unsure."""

    name = "evolution"

    def __init__(self, population: int = 50, crossover_prob: float = 0.9, mutation_prob: float = 0.1,
                 max_tries: int = 30, local_share: float = 0.8, screen_share: float = 0.5, model_share: float = 0.8,
                 model_warmup: int | None = None, pool_children: int = 6, quantiles: int = 5,
                 slack: float = 0.05):
        self.population, self.crossover_prob, self.mutation_prob, self.max_tries = (
            population, crossover_prob, mutation_prob, max_tries)
        self.model_share, self.pool_children = model_share, pool_children  # see the class docstring
        # feasible trials before the surrogate is trusted (default: two generations)
        self.model_warmup = 2 * population if model_warmup is None else model_warmup
        self.quantiles, self.slack = quantiles, slack
        self._cheap_cache: dict[str, dict[str, Any]] = {}  # cheap metrics of pool candidates, by arch id
        self._neighbours: dict[str, list[Any]] = {}  # one-gene neighbours of front members, by arch id
        self._surrogate: Any = None  # refitted every generation; holds the memo of encodings
        self.local_share = local_share  # share of each generation from Pareto local search
        self.screen_share = screen_share  # share of local-search picks screened on cheap objectives (the rest random)

    def run(self, ctx: SearchContext) -> None:
        store = ctx.store
        generations = [e.get("generation") for e in store.entries if e.get("generation") is not None]
        generation = max(generations) if generations else 0  # on resume, replay the last generation
        size = max(2, min(self.population, ctx.trials))
        while ctx.remaining() > 0:
            history = [e for e in store.entries if e.get("generation", -1) < generation]
            rng = np.random.default_rng([ctx.seed, generation, ctx.salt])
            proposals = self.propose(ctx, history, size, rng, first=generation == 0 or not any(e["feasible"] for e in history))
            if not proposals:
                ctx.note(f"evolution stopped: no new architecture within budget found after generation {generation}")
                return
            todo = [m for m in proposals if m["arch_id"] not in store.by_id]
            ctx.evaluate(todo, generation=generation)
            generation += 1

    def propose(self, ctx: SearchContext, history: list[dict[str, Any]], size: int, rng: np.random.Generator,
                first: bool) -> list[dict[str, Any]]:
        problem, space = ctx.problem, ctx.problem.space
        seen = {e["arch_id"] for e in history}
        out: list[dict[str, Any]] = []
        ids: set[str] = set()

        def accept(candidate: Any) -> None:
            fixed = problem.repair(candidate, rng) if candidate is not None else None
            if fixed is not None and fixed[0].id not in seen and fixed[0].id not in ids:
                ids.add(fixed[0].id)
                out.append(fixed[1])

        if first:
            for name in space.preset_names:  # published designs are good starting points when they fit
                metrics = problem.cheap([space.preset(name)])[0]
                if metrics["feasible"] and len(out) < size:
                    accept(metrics["arch"])
            tries = 0
            while len(out) < size and tries < self.max_tries * size:
                tries += 1
                accept(space.sample(rng))
            if not out and not history:
                raise Infeasible(f"no architecture within all budgets together ({problem.budget}) was found in {tries} "
                                 "random samples repaired by shrinking; each budget alone is achievable, so relax one")
            return out
        feasible = [e for e in history if e["feasible"]]
        costs = problem.costs(feasible)
        chosen, ranks, crowd = select_survivors(costs, size)
        parents = [feasible[i]["arch"] for i in chosen]

        def tournament() -> Any:
            a, b = rng.integers(len(parents), size=2)
            if (ranks[a], -crowd[a]) <= (ranks[b], -crowd[b]):
                return parents[a]
            return parents[b]

        n_model = int(round(self.model_share * size)) if len(feasible) >= self.model_warmup else 0
        if n_model and "accuracy" in problem.objectives:
            out.extend(self.model_guided(ctx, feasible, costs, n_model, seen, rng))
            ids.update(m["arch_id"] for m in out)
        n_local = int(round(self.local_share * (size - len(out))))
        if n_local:
            out.extend(self.local_search(ctx, feasible, costs, n_local, seen | ids, rng))
            ids.update(m["arch_id"] for m in out)
        tries = 0
        while len(out) < size and tries < self.max_tries * size:
            tries += 1
            child = tournament()
            if len(parents) > 1 and rng.random() < self.crossover_prob:
                child = space.crossover(child, tournament(), rng)
            accept(space.mutate(child, rng, prob=self.mutation_prob))
        return out

    def model_guided(self, ctx: SearchContext, feasible: list[dict[str, Any]], costs: np.ndarray, n: int, seen: set[str],
                     rng: np.random.Generator) -> list[dict[str, Any]]:
        """Up to `n` unseen feasible candidates chosen by expected hypervolume improvement under an
        accuracy surrogate fitted on every feasible trial so far (the cheap objectives are exact).

        The pool: every one-gene neighbour of the front's members, and `pool_children` children per
        member (crossover of two members, then mutation); those over budget are left out. The
        surrogate's leave-one-out error is the spread of each prediction."""
        from .surrogate import RidgeSurrogate, expected_improvement_batch

        problem, space = ctx.problem, ctx.problem.space
        a = problem.objectives.index("accuracy")
        on_front = pareto_mask(costs)
        members = [feasible[i] for i in np.flatnonzero(on_front)]
        # the caches keep only what this generation uses: front members mostly stay from one to the next
        self._neighbours = {m["arch_id"]: self._neighbours.get(m["arch_id"]) or space.neighbours(m["arch"]) for m in members}
        pool: dict[str, Any] = {}
        for m in members:
            for arch in self._neighbours[m["arch_id"]]:
                if arch.id not in seen:
                    pool.setdefault(arch.id, arch)
        for _ in range(self.pool_children * len(members)):
            x, y = rng.integers(len(members), size=2)
            child = space.mutate(space.crossover(members[x]["arch"], members[y]["arch"], rng), rng, prob=self.mutation_prob)
            if child.id not in seen:
                pool.setdefault(child.id, child)
        new = [arch for i, arch in pool.items() if i not in self._cheap_cache]
        cache = self._cheap_cache = {i: self._cheap_cache[i] for i in pool if i in self._cheap_cache}
        cache.update((m["arch_id"], m) for m in problem.cheap(new))
        metrics = [cache[i] for i in pool if cache[i]["feasible"]]
        if not metrics:
            return []
        if self._surrogate is None:
            self._surrogate = RidgeSurrogate(space)
        surrogate = self._surrogate
        codes = surrogate.features.codes([e["arch"] for e in feasible])
        surrogate.fit(codes, [e["accuracy"] for e in feasible])
        predicted = surrogate.predict(surrogate.features.codes([m["arch"] for m in metrics]))
        cand = problem.costs([{**m, "accuracy": float(p)} for m, p in zip(metrics, predicted)])
        spread = np.full(len(metrics), surrogate.sigma / problem.normaliser.accuracy_scale)
        picks = expected_improvement_batch(costs[on_front], cand, spread, a, n, self.quantiles, self.slack)
        return [metrics[i] for i in picks]

    def local_search(self, ctx: SearchContext, feasible: list[dict[str, Any]], costs: np.ndarray, n: int, seen: set[str],
                     rng: np.random.Generator) -> list[dict[str, Any]]:
        """Pareto local search: one unseen feasible one-gene neighbour for each of up to `n` front members.

        The cheap objectives of every neighbour are known exactly, so each is screened without any
        accuracy model: its chance of joining the front is scored by how far its parent's accuracy
        (a neighbour's accuracy is close to it) exceeds the best accuracy among evaluated architectures at
        least as cheap in every other objective. For a share of the members the best-scored neighbour
        is proposed, for the others a random one (greedy screening alone explores too little).
        """
        problem, space = ctx.problem, ctx.problem.space
        objectives = problem.objectives
        members = [feasible[i] for i in np.flatnonzero(pareto_mask(costs))]
        per_member, flat, taken = [], [], set()
        for i in rng.permutation(len(members)):
            options = [a for a in space.neighbours(members[i]["arch"]) if a.id not in seen and a.id not in taken]
            taken.update(a.id for a in options)
            per_member.append((members[i], len(flat), len(flat) + len(options)))
            flat.extend(options)
        if not flat:
            return []
        metrics = problem.cheap(flat)
        ok = np.array([m["feasible"] for m in metrics])
        score = rng.random(len(flat)) * 1e-9  # ties broken at random
        if "accuracy" in objectives and len(objectives) > 1:
            a = objectives.index("accuracy")
            cheap_cols = [j for j in range(len(objectives)) if j != a]
            placeholder = [{**m, "accuracy": 0.0} for m in metrics]
            cand = problem.costs(placeholder)[:, cheap_cols]
            known = costs[:, cheap_cols]
            known_acc = -costs[:, a]  # normalised accuracy, higher is better
            best_below = np.full(len(flat), -np.inf)
            for start in range(0, len(flat), 2048):
                block = cand[start:start + 2048]
                covers = np.all(known[None, :, :] <= block[:, None, :], axis=2)
                best_below[start:start + 2048] = np.where(covers, known_acc[None, :], -np.inf).max(axis=1)
            member_acc = {id(m): -problem.costs([m])[0, a] for m, _, _ in per_member}
            for m, lo, hi in per_member:
                score[lo:hi] += member_acc[id(m)] - np.maximum(best_below[lo:hi], -1e9)
        out = []
        for _m, lo, hi in per_member:
            if len(out) >= n:
                break
            idx = [j for j in range(lo, hi) if ok[j]]
            if idx:
                pick = max(idx, key=lambda j: score[j]) if rng.random() < self.screen_share else idx[int(rng.integers(len(idx)))]
                out.append(metrics[pick])
        return out


class OptunaStrategy:
    """One of Optuna's samplers over the architecture's integer encoding (one integer per gene), with
    the budgets as Optuna constraints (a positive value is a violation)."""

    name = "optuna"

    def __init__(self, sampler: str = "nsga2", population: int = 50):
        if sampler not in SAMPLERS:
            raise BadInput(f"unknown sampler {sampler!r} (choose from {', '.join(SAMPLERS)})")
        self.sampler_name, self.population = sampler, population

    def make_sampler(self, seed: int):
        """The sampler by name; those that handle constraints read them from each trial (``set_constraint``)."""
        import optuna

        size = max(2, self.population)
        if self.sampler_name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=size, seed=seed)
        if self.sampler_name == "nsga3":
            return optuna.samplers.NSGAIIISampler(population_size=size, seed=seed)
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        if self.sampler_name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def run(self, ctx: SearchContext) -> None:
        import optuna

        problem, store = ctx.problem, ctx.store
        genes = problem.space.genes()
        # Re-seeded by what is already stored, so a resumed run is reproducible from its kill point.
        sampler = self.make_sampler(ctx.seed + 7919 * store.evaluated + ctx.salt)
        if ctx.executor is not None and hasattr(ctx.executor, "optuna_search"):
            ctx.executor.optuna_search(ctx, sampler)  # Ray Tune's OptunaSearch drives the same study
            return
        study = optuna.load_study(study_name=store.study_name, storage=store.storage, sampler=sampler)
        while ctx.remaining() > 0:
            asked = []
            for _ in range(min(ctx.batch_size, ctx.remaining())):
                trial = ctx.reserve(study) if ctx.shared else study.ask()
                if trial is None:
                    break
                if not ctx.shared:
                    trial.set_user_attr("worker", ctx.worker)  # lets a resume tell a killed trial from a live one
                codes = [trial.suggest_int(name, 0, len(choices) - 1) for name, choices in genes]
                asked.append((trial, problem.cheap([problem.space.decode(codes)])[0]))
            ctx.finish_trials(study, asked)


class ActionSearch:
    """EfficientFormerV2's search: from the largest subnet, evaluate every shrinking action (remove or
    slim a block, narrow a stage, lower an FFN ratio, lower the resolution) and apply the one with the
    smallest accuracy drop per MES gained; repeat until every budget holds. Each evaluated candidate is a
    trial (``step``, ``action``, ``parent``), so the path and every point on it are in the storage."""

    name = "actions"

    def run(self, ctx: SearchContext) -> None:
        problem, store = ctx.problem, ctx.store
        current = problem.cheap([problem.space.largest()])[0]
        current = ctx.evaluate([current], step=0, action="start", force_accuracy=True)
        if not current:
            return
        current = current[0]
        step = 0
        while not current["feasible"]:
            step += 1
            actions = problem.space.shrink_actions(current["arch"])
            if not actions:
                ctx.note("actions: nothing left to shrink")
                return
            candidates = problem.cheap([a for _, a in actions])
            for (name, _), c in zip(actions, candidates):
                c["action"] = name
            gains = [c["mes"] - current["mes"] for c in candidates]
            useful = [(c, g) for c, g in zip(candidates, gains) if g > 0] or list(zip(candidates, gains))
            new = [c for c, _ in useful if c["arch_id"] not in store.by_id]
            if new:  # one batch per step: with --ray the candidates are evaluated in parallel
                recorded = ctx.evaluate(new, step=step, parent=current["number"], force_accuracy=True)
                if len(recorded) < len(new):
                    ctx.note(f"actions: the trial limit was reached at step {step} before every budget held; raise --trials")
                    return
            evaluated = [(store.by_id[c["arch_id"]], gain) for c, gain in useful]
            drop_per_gain = [((current["accuracy"] - e["accuracy"]) / g if g > 0 else np.inf) for e, g in evaluated]
            current = evaluated[int(np.argmin(drop_per_gain))][0]


def make_strategy(name: str, sampler: str = "nsga2", population: int = 50) -> Any:
    if name == "evolution":
        return Evolution(population=population)
    if name == "optuna":
        return OptunaStrategy(sampler, population=population)
    if name == "actions":
        return ActionSearch()
    raise BadInput(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")
