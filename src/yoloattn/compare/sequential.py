"""Adaptive seeds (``compare --until-decided``): stop each variant as soon as a group-sequential test decides.

A fixed design gives every variant the same seeds, whether its effect is large, null or clearly negative.
The sequential design trains seeds in batches (``--seeds`` per batch, up to ``--max-seeds``) and after each
batch (an *interim*) tests each hypothesis with AdaStop (Mathieu et al., "AdaStop: adaptive statistical
testing for sound comparisons of Deep RL agents", 2023; PyPI ``adastop``): a group-sequential permutation
test of the mean mAP50-95 difference with its error spent linearly over the interims. A variant whose
hypotheses are decided stops training; the baseline trains while any variant still runs.

The hypotheses, for each variant v against the baseline b (values: per-seed mAP50-95):

- v vs b: "larger" -> ``better``, "smaller" -> ``worse``;
- with ``--min-effect D`` also (v - D) vs b and (v + D) vs b, the two one-sided halves of an equivalence test
  (TOST): (v - D) "smaller" means Δ < D, (v + D) "larger" means Δ > -D; both -> ``no difference ≥ D``.
  (v - D) "larger" means Δ > D and (v + D) "smaller" Δ < -D: ``better`` / ``worse`` by more than D.

After the last interim, a variant not decided is ``undecided``; one whose runs and the baseline's all scored
0 is ``nothing learned`` (no test can read such runs, and more seeds of them learn nothing either).

The family-wise error rate (FWER) of all decisions together stays at α by Bonferroni: each of the H
hypotheses (one per variant, three with ``--min-effect``) gets its own AdaStop test at two-sided level α/H.
Three choices differ from calling AdaStop on all variants at α, each measured by ``benchmarks/sequential.py``
(docs/compare.md, "Adaptive seeds"):

- One comparator per hypothesis, not AdaStop's joint step-down over all of them: AdaStop permutes each
  comparison on its own, with the same index for all, which for comparisons sharing the baseline is not a
  permutation of the data; with two variants its FWER came out above α in simulation. A single comparison
  is an exact permutation test.
- AdaStop 0.1.3 compares |T| with a quantile of the *signed* permutation statistic, so a two-sided test at α
  rejects up to 2α of null comparisons (measured in the benchmark). AdaStop gets level/2:
  P(|T| > b) <= P(T > b) + P(-T > b) = 2 P(T > b).
- Its permutations are drawn with a fixed seed (:data:`PERMUTATION_SEED`), so the decisions are a function of
  the per-seed values alone: a rerun of the same command replays the interims from the finished runs and
  reaches the same decisions before it trains anything new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .settings import CompareError
from .stats import ALPHA

PERMUTATIONS = 10000  # AdaStop's B: random permutations once the exact count exceeds it
PERMUTATION_SEED = 0
BETTER, WORSE, EQUIVALENT, CONTINUE, UNDECIDED = "better", "worse", "no difference", "continue", "undecided"
NOTHING = "nothing learned"  # every run of the variant and of the baseline has mAP50-95 0: no test can read them


@dataclass(frozen=True)
class SequentialDesign:
    """The group-sequential design: ``batch`` seeds per model per interim, at most ``interims`` interims
    (``max_seeds`` = batch x interims seeds per model), FWER ``alpha`` over all hypotheses, and the smallest
    Δ mAP50-95 that matters (``min_effect``, in mAP units; None: no equivalence hypotheses, so a variant
    without an effect trains to ``max_seeds``)."""

    batch: int
    interims: int
    min_effect: float | None = None
    alpha: float = ALPHA
    permutations: int = PERMUTATIONS

    @property
    def max_seeds(self) -> int:
        return self.batch * self.interims

    def roles(self) -> dict[str, float]:
        """Each hypothesis of a variant: its role and the shift added to the variant's values."""
        if not self.min_effect:
            return {"diff": 0.0}
        return {"diff": 0.0, "below": -self.min_effect, "above": self.min_effect}

    def hypotheses(self, variants: int) -> int:
        """How many hypotheses ``variants`` variants make: the Bonferroni divisor of α."""
        return len(self.roles()) * variants

    @classmethod
    def from_options(cls, seeds: int, max_seeds: int | None, min_effect: float | None) -> SequentialDesign:
        """The design of ``--seeds`` (the batch), ``--max-seeds`` (default 4 batches) and ``--min-effect``.

        Raises CompareError when max_seeds is not a multiple of seeds of at least two batches, or min_effect
        is not in (0, 1).
        """
        max_seeds = max_seeds or 4 * seeds
        if max_seeds % seeds or max_seeds < 2 * seeds:
            raise CompareError(f"--max-seeds must be a multiple of --seeds (the batch each interim adds), at least "
                               f"two batches: got --max-seeds {max_seeds} with --seeds {seeds}; e.g. --max-seeds "
                               f"{max(2, -(-max_seeds // seeds)) * seeds}")
        if min_effect is not None and not 0 < min_effect < 1:
            raise CompareError(f"--min-effect is a Δ mAP50-95 in (0, 1), e.g. 0.01; got {min_effect}")
        design = cls(seeds, max_seeds // seeds, min_effect)
        design.check(1)
        return design

    def check(self, variants: int) -> None:
        """Raise CompareError when the design cannot decide anything for ``variants`` variants."""
        if self.earliest_interim(variants) is None:
            which = f"{variants} variant{'s' if variants > 1 else ''}" + (" and --min-effect" if self.min_effect
                                                                           else "")
            raise CompareError(f"--seeds {self.batch} per batch with --max-seeds {self.max_seeds} can never decide "
                               f"for {which}: a permutation test of so few seeds has too few orderings to reach "
                               f"α/{self.hypotheses(variants)}; use more seeds per batch (--seeds) or more "
                               "batches (--max-seeds)")

    def permutations_at(self, interim: int) -> int:
        """How many permutations AdaStop's test has at ``interim`` (1-based): every ordering of the batches'
        seeds while they number fewer than ``permutations``, then as many as it keeps drawing."""
        per_batch = math.comb(2 * self.batch, self.batch)
        full = per_batch ** interim
        if full < self.permutations:
            return full
        return self.permutations if interim == 1 else per_batch ** int(math.log(self.permutations) / math.log(per_batch))

    def earliest_interim(self, variants: int = 1) -> int | None:
        """The first interim (1-based) at which a test can decide anything for ``variants`` variants: its
        smallest tail, one permutation, fits in the error spent so far (α/H/2 · k/K); None: at no interim."""
        level = self.alpha / self.hypotheses(variants) / 2
        for k in range(1, self.interims + 1):
            if 1 / self.permutations_at(k) <= level * k / self.interims:
                return k
        return None

    def describe(self, variants: int = 1) -> str:
        """One line for the plan: batches, bound, FWER, what stops a variant and how early it can."""
        stop = "better, worse" + (f" or no difference ≥ {self.min_effect:g}" if self.min_effect else "")
        first = self.earliest_interim(variants)
        text = (f"adaptive seeds: batches of {self.batch} seed{'s' if self.batch > 1 else ''} per model, up to "
                f"{self.max_seeds}; a variant stops once AdaStop decides ({stop}; family-wise error ≤ "
                f"{self.alpha:g} over {self.hypotheses(variants)} hypothes{'e' if variants > 1 or self.min_effect else 'i'}s), "
                f"at the earliest after batch {first}")
        if first == self.interims:
            text += (" — its last: this design cannot save a seed; more seeds per batch (--seeds) or more "
                     "batches (--max-seeds) let it stop early")
        return text


@dataclass(frozen=True)
class Decision:
    """Where one variant stands: ``outcome`` (``better``, ``worse``, ``no difference``, ``continue`` while it
    still trains, ``undecided`` after the last interim, ``nothing learned`` when every run of it and of the
    baseline has mAP50-95 0), the ``seeds`` its decision rests on, and the 1-based ``interim`` that decided
    it (0: not decided)."""

    outcome: str
    seeds: int
    interim: int = 0

    def verdict(self, min_effect: float | None) -> str:
        """The outcome in words: "better", "worse", "no difference ≥ 0.01", "undecided", "continue"."""
        return f"no difference ≥ {min_effect:g}" if self.outcome == EQUIVALENT else self.outcome

    def text(self, min_effect: float | None) -> str:
        """The verdict cell, e.g. "better (sequential, 6 seeds)" or "undecided (sequential, 12 seeds)"."""
        return f"{self.verdict(min_effect)} (sequential, {self.seeds} seeds)"


@dataclass(frozen=True)
class SequentialState:
    """The design replayed on the finished runs: each variant's :class:`Decision`, the interims done, and
    which seeds the next batch trains (:meth:`next_seeds`, for the baseline and the :meth:`active` variants)."""

    design: SequentialDesign
    interims_done: int
    decisions: dict[str, Decision]

    @property
    def done(self) -> bool:
        return all(d.outcome != CONTINUE for d in self.decisions.values())

    def active(self) -> list[str]:
        return [name for name, d in self.decisions.items() if d.outcome == CONTINUE]

    def next_seeds(self) -> range:
        """The seeds of the next batch (empty when every variant is decided)."""
        if self.done:
            return range(0)
        k = self.interims_done
        return range(k * self.design.batch, (k + 1) * self.design.batch)

    def runs(self) -> int:
        """Runs the decisions rest on (baseline included)."""
        return self.interims_done * self.design.batch + sum(d.seeds for d in self.decisions.values())


def _comparator(design: SequentialDesign, level: float):
    """A fresh AdaStop comparator of one hypothesis (agent 1, the shifted variant, against agent 0, the
    baseline) at two-sided ``level`` (AdaStop gets level/2, see the module docstring)."""
    try:
        from adastop import MultipleAgentsComparator
    except ImportError as err:  # a broken install; adastop is a dependency
        raise CompareError("--until-decided needs the adastop package: pip install adastop") from err
    return MultipleAgentsComparator(n=design.batch, K=design.interims, B=design.permutations,
                                    comparisons=_pairs([(1, 0)]), alpha=level / 2, seed=PERMUTATION_SEED)


class _Pair(tuple):
    """An (agent, agent) hypothesis whose ``str`` is computed once: AdaStop keys its dictionaries by
    ``str(pair)`` inside its per-permutation loops, where printing a numpy row took most of the time."""

    def __new__(cls, first: int, second: int):
        pair = super().__new__(cls, (first, second))
        pair._key = f"[{first} {second}]"
        return pair

    def __str__(self) -> str:
        return self._key


def _pairs(pairs: list[tuple[int, int]]):
    """A 1-D object array of :class:`_Pair`: AdaStop indexes its hypotheses with boolean masks."""
    import numpy as np

    array = np.empty(len(pairs), dtype=object)
    for i, (first, second) in enumerate(pairs):
        array[i] = _Pair(first, second)
    return array


def decide(design: SequentialDesign, baseline: list[float], variants: dict[str, list[float]]) -> SequentialState:
    """Replay the design's interims on per-seed values (seed 0 first), as far as the values reach.

    ``baseline``: the baseline's mAP50-95 per seed; ``variants``: each variant's. Interim k (0-based) needs the
    first (k+1)·batch values of the baseline and of every variant undecided after interim k-1; values beyond
    are ignored (they do not change decisions). Returns the state after the last interim the values allow.
    """
    import numpy as np

    names = list(variants)
    if not names:
        return SequentialState(design, 0, {})
    roles = design.roles()
    level = design.alpha / (len(roles) * len(names))  # Bonferroni over every hypothesis of the comparison
    tests = {(name, role): _comparator(design, level) for name in names for role in roles}
    got = {(name, role): CONTINUE for name in names for role in roles}
    decisions = {name: Decision(CONTINUE, 0) for name in names}
    interims = 0
    for k in range(design.interims):
        need = (k + 1) * design.batch
        active = [n for n in names if decisions[n].outcome == CONTINUE]
        if not active or len(baseline) < need or any(len(variants[n]) < need for n in active):
            break
        for name in active:
            for role, shift in roles.items():
                if got[name, role] != CONTINUE:  # decided at an earlier interim: its test has ended
                    continue
                test = tests[name, role]
                test.partial_compare({"baseline": np.asarray(baseline[:need], dtype=float),
                                      "variant": np.asarray(variants[name][:need], dtype=float) + shift},
                                     verbose=False)
                got[name, role] = test.decisions[_KEY]
            outcome = _outcome({role: got[name, role] for role in roles}, last=k == design.interims - 1)
            if not any(variants[name][:need]) and not any(baseline[:need]):
                # all 0: the test would read "no difference" into runs that never learned; more seeds of
                # the same settings learn nothing either
                outcome = NOTHING
            decisions[name] = Decision(outcome, need, k + 1 if outcome not in (CONTINUE, UNDECIDED) else 0)
        interims = k + 1
    return SequentialState(design, interims, decisions)


def _outcome(got: dict[str, str | None], last: bool) -> str:
    """A variant's outcome from AdaStop's decisions on its hypotheses ("larger" / "smaller" / "equal" /
    "continue", each about the first agent of the pair, i.e. the (shifted) variant)."""
    if got.get("diff") == "larger" or got.get("below") == "larger":
        return BETTER
    if got.get("diff") == "smaller" or got.get("above") == "smaller":
        return WORSE
    if got.get("below") == "smaller" and got.get("above") == "larger":
        return EQUIVALENT
    return UNDECIDED if last else CONTINUE



_KEY = str(_Pair(1, 0))  # AdaStop's decisions key of the one hypothesis each comparator tests
