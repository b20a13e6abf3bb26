"""The phases of a trial after its setup: learn (or scale uniformly), export, rebuild, retrain.

Each phase is a function of what the one before handed it: ``learn`` (``baseline``,
``resumed``) hands the rebuild a ``Learned`` structure, exported to the trial's structure.json;
``rebuild`` hands retraining the smaller Keras model; ``retrain`` hands the end of the trial a
``Retrained`` model and its accuracy. ``trainers.trial`` runs them in turn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budgets import BudgetPath
from .config import TrialConfig
from .morphnet.errors import StructureError
from .morphnet.structure import Structure
from .records import LEARN, RETRAIN
from .training import Fit, Progress, Setup, compile_for_training, train

# beside structure.json, when a trial retrains a structure from its path: the final one
FINAL_STRUCTURE = "final_structure.json"


@dataclass(frozen=True)
class Learned:
    """What structure learning hands the rebuild: the exported structure and how it was learned.

    A uniform-width baseline and a trial resumed after learning hand over the same: the baseline
    with no strength and no learned accuracy. ``initial_term`` is the regularization term before
    learning when this run learned (what the retraining checkpoints keep), else 0.
    """

    structure: Structure
    structure_path: Path  # the trial's structure.json
    strength: float
    learned_val_accuracy: float | None
    initial_term: float = 0.0
    network: Any = None  # the network learned on (gated for FiGS), when this run learned
    # given budgets: the final structure's cost, and the budget ``structure`` was kept for
    # (None: it is the final one)
    final_cost: float | None = None
    budget: float | None = None


@dataclass(frozen=True)
class Retrained:
    """What retraining hands the end of the trial: the retrained model and its accuracy."""

    model: Any
    val_accuracy: float


def gated(seed_model: Any, config: TrialConfig) -> Any:
    """The network structure learning regularizes: the seed network, gated for FiGS."""
    if config.algorithm != "logistic_sigmoid":
        return seed_model
    from .morphnet.keras3 import add_gating

    return add_gating(
        seed_model,
        seed=config.seed,
        temperature=config.gate_temperature,
        log_odds_init=config.gate_log_odds_init,
        straight_through=config.gate_straight_through,
    )


def learn(setup: Setup, progress: Progress, network: Any, regularizer: Any) -> Learned:
    """Learn ``network``'s structure under ``regularizer`` (going on from the checkpoint), export it.

    Raises:
        TrialFailed: a NaN or infinite loss.
    """
    from .morphnet.keras3 import StructureLearner
    from .morphnet.keras3.backend import keras

    config = setup.config
    # config validation guarantees a multiplier when no strength is given
    multiplier = float(config.multiplier or 0.0)
    strength = config.strength if config.strength is not None else multiplier / setup.seed_cost
    learner = StructureLearner(network, regularizer, strength)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    compile_for_training(learner, optimizer, setup.jit_compile)
    initial = 0
    # the term before any learning: how far it has fallen tells a run that moves from one
    # that does not, before any channel crosses the threshold
    initial_term = float(regularizer.get_regularization_term())
    if progress.resumes(LEARN):
        initial = progress.restore(network, optimizer)
        initial_term = progress.saved_initial_term(initial_term)
    path = None
    if config.budgets:
        path = BudgetPath.of(config.budgets, config.budget_tolerance, progress.saved_budget_path)
    progress.budget_path = path
    learning = Learning(setup, progress, regularizer, strength, initial_term, path)
    fit = Fit(
        phase=LEARN,
        model=learner,
        checkpointed=network,
        optimizer=optimizer,
        epochs=config.epochs,
        initial_epoch=initial,
        strength=strength,
        learned_val_accuracy=None,
        initial_term=initial_term,
        epoch_fields=learning.epoch_fields,
        after_step=learning.after_step,
        stop_early=learning.stop_early,
    )
    accuracy = train(setup, progress, fit)
    structure, budget = learning.retrained()
    _check_degenerate(structure, setup.seed_cost, strength, progress)
    final_cost = structure.extra.get("final_cost") if path is not None else None
    return Learned(
        structure,
        setup.structure_path,
        strength,
        accuracy,
        initial_term,
        network,
        final_cost=final_cost,
        budget=budget,
    )


def baseline(setup: Setup, progress: Progress) -> Learned:
    """The seed network scaled uniformly to ``baseline_width``, which learns nothing."""
    from .morphnet.widths import scale_structure, seed_structure, structure_cost

    width = setup.config.baseline_width
    scaled = scale_structure(seed_structure(setup.seed_graph), width or 1.0)
    cost = structure_cost(setup.seed_graph, scaled, setup.target)
    structure = dataclasses.replace(
        scaled,
        cost_name=setup.target.cost_name,
        seed_cost=setup.seed_cost,
        learned_cost=cost,
        regularizer=f"uniform x{width}",
        extra={**scaled.extra, **preprocessing_extra(setup)},
    )
    _save(structure, setup, progress, final=True)
    return Learned(structure, setup.structure_path, strength=0.0, learned_val_accuracy=None)


def resumed(setup: Setup, progress: Progress) -> Learned:
    """What an earlier run of the trial learned, when it stopped after learning."""
    structure = Structure.load(setup.structure_path)
    strength, accuracy = progress.saved_learning()
    final_cost, budget = structure.extra.get("final_cost"), structure.extra.get("budget")
    return Learned(
        structure, setup.structure_path, strength, accuracy, final_cost=final_cost, budget=budget
    )


@dataclass(frozen=True)
class Learning:
    """Structure learning under way: what its epochs report and what its exports write."""

    setup: Setup
    progress: Progress
    regularizer: Any
    strength: float
    initial_term: float
    path: BudgetPath | None = None  # the budgets the trial may retrain at, when it has some
    _alive: dict[str, Any] = dataclasses.field(default_factory=dict)  # at the last check

    def epoch_fields(self) -> dict[str, Any]:
        """The learn phase's fields of an epoch record (``records.Epoch``)."""
        setup, regularizer = self.setup, self.regularizer
        cost = float(regularizer.get_cost())
        alive = regularizer.alive_vectors()
        total = sum(v.size for v in alive.values())
        fields: dict[str, Any] = dict(
            cost=cost,
            cost_name=setup.target.cost_name,
            cost_fraction=cost / setup.seed_cost if setup.seed_cost else float("nan"),
            alive_fraction=float(sum(int(v.sum()) for v in alive.values()) / max(total, 1)),
            alive={name: float(v.mean()) for name, v in alive.items()},
            strength=self.strength,
            **self.predicted_now(),
        )
        if self.initial_term > 0:
            term = float(regularizer.get_regularization_term())
            fields.update(term_fraction=term / self.initial_term)
        return fields

    def predicted_now(self) -> dict[str, float]:
        """The cost of the structure if learning stopped now, and whether it can be rebuilt."""
        from .morphnet.widths import keep_full_width, output_layers, structure_cost

        setup = self.setup
        structure = keep_full_width(
            self.regularizer.structure(step=self.progress.step), output_layers(setup.seed_graph)
        )
        predicted = structure_cost(setup.seed_graph, structure, setup.target)
        # collapsed: nothing left, or a dead layer on every path (a dead residual branch leaves
        # the skip path: a smaller network, not a collapse)
        collapsed = predicted <= 0
        if not collapsed and any(s.alive == 0 for s in structure.layers.values()):
            from .morphnet.keras3 import cuts_network

            collapsed = cuts_network(setup.seed_model, structure)
        return dict(
            predicted_cost=float(predicted),
            predicted_fraction=float(predicted / setup.seed_cost) if setup.seed_cost else 1.0,
            collapsed=float(collapsed),
        )

    def after_step(self, model: Any) -> None:
        """Export the structure every ``export_every_steps`` training steps; given budgets,
        check its cost along the path as often as ``BudgetPath`` asks."""
        step, every = self.progress.step, self.setup.config.export_every_steps
        export = bool(every) and step % every == 0
        check = self.path is not None and self.path.due(step)
        if not (export or check):
            return
        from .morphnet.keras3.backend import sync_weights

        # mid-epoch, a JAX fit holds the weights outside the model's variables
        sync_weights(model)
        if not export and self._unchanged():
            assert self.path is not None
            self.path.check(step, self.path.points[-1][1])  # no channel died or revived
            return
        structure = self.structure(final=False)
        file = _save(structure, self.setup, self.progress, final=False) if export else None
        if check:
            self.offer(structure, file)

    def _unchanged(self) -> bool:
        """Whether every layer has the same channels alive as at the path's last check (then
        its cost is the same: a third of the time of working it out)."""
        alive = {k: v.tobytes() for k, v in self.regularizer.alive_vectors().items()}
        same = bool(self.path and self.path.points) and alive == self._alive.get("last")
        self._alive["last"] = alive
        return same

    def offer(self, structure: Structure, file: Path | None) -> None:
        """A structure on the path: kept (written, when it is not yet) for the budgets it is
        now the nearest to, unless it cuts the network."""
        assert self.path is not None
        setup, step = self.setup, self.progress.step
        fraction = structure.learned_cost / setup.seed_cost if setup.seed_cost else 1.0
        budgets = self.path.check(step, fraction)
        if not budgets or self._cuts(structure):
            return
        file = file or _save(structure, setup, self.progress, final=False)
        self.path.keep(budgets, step, fraction, str(file))

    def _cuts(self, structure: Structure) -> bool:
        if not any(s.alive == 0 for s in structure.layers.values()):
            return False
        from .morphnet.keras3 import cuts_network

        return bool(cuts_network(self.setup.seed_model, structure))

    def stop_early(self, record: Any) -> bool:
        """Whether learning should end after this epoch: its structure collapsed, and its path
        crossed a budget first (the structure kept there is what the trial retrains)."""
        chosen = self.path.chosen() if self.path is not None else None
        if chosen is None or not record.is_collapsed:
            return False
        self.progress.warn(
            f"structure learning ended after epoch {record.epoch}: the structure collapsed, "
            f"after its path crossed the budget {chosen.budget:.4g} at step {chosen.step} "
            f"({chosen.fraction:.1%} of the seed's {self.setup.target.cost_name}), which is "
            f"retrained"
        )
        return True

    def retrained(self) -> tuple[Structure, float | None]:
        """The structure to retrain, written as structure.json, and the budget it was kept for.

        Without budgets, the final structure. With them, the final structure is the path's
        last point; the candidate of the first budget (in the order given) the path landed in is
        retrained instead when there is one, the final one kept beside it
        (``final_structure.json``).
        """
        final = self.structure(final=True)
        file = _save(final, self.setup, self.progress, final=self.path is None)
        if self.path is None:
            return final, None
        self.path.forget(str(file))  # a candidate of this step: the final structure replaced it
        self.offer(final, file)
        chosen = self.path.chosen()
        structure = final
        if chosen is not None and chosen.file != str(file):
            structure = Structure.load(chosen.file)
            final_file = final.save(self.setup.out / FINAL_STRUCTURE)
            self.progress.reporter.artifact(str(final_file), "final structure")
        budget = chosen.budget if chosen is not None else None
        structure = dataclasses.replace(
            structure,
            extra={
                **structure.extra,
                "budget": budget,
                "final_step": final.step,
                "final_cost": final.learned_cost,
            },
        )
        saved = structure.save(self.setup.structure_path)
        self.progress.reporter.artifact(str(saved), "structure")
        return structure, budget

    def structure(self, final: bool) -> Structure:
        """The structure learned so far, with the cost of what ``rebuild`` will build from it."""
        from .morphnet.widths import (
            keep_full_width,
            output_layers,
            rebuild_structure,
            structure_cost,
        )

        setup, regularizer, step = self.setup, self.regularizer, self.progress.step
        if final and setup.config.algorithm == "logistic_sigmoid":
            # the gates' inference masks decide, ORed across gates tied by adds
            structure = regularizer.structure(step=step, inference=True)
        else:
            structure = regularizer.structure(step=step)
        # the logits keep every class: output layers are rebuilt at full width
        structure = keep_full_width(structure, output_layers(setup.seed_graph))
        # the cost of what rebuild() will build (one channel in dead layers if it must)
        predicted = structure_cost(setup.seed_graph, structure, setup.target)
        _, min_channels = rebuild_structure(setup.seed_graph, structure)
        return dataclasses.replace(
            structure,
            cost_name=setup.target.cost_name,
            seed_cost=setup.seed_cost,
            learned_cost=predicted,
            cost_definition="rebuild",
            rebuild_min_channels=min_channels,
            regularizer=regularizer.name,
            step=step,
            extra={
                "strength": self.strength,
                "algorithm": setup.config.algorithm,
                "target": setup.config.target,
                **preprocessing_extra(setup),
            },
        )


def preprocessing_extra(setup: Setup) -> dict[str, Any]:
    """What the structure JSON records of the layers in front of the network, when any: what
    ``morphsweep apply`` puts back in front of the seed it rebuilds."""
    if setup.preprocessing.empty:
        return {}
    return {"preprocessing": setup.preprocessing.to_dict()}


def _save(structure: Structure, setup: Setup, progress: Progress, final: bool) -> Path:
    """Write an exported structure under structures/ (and, ``final``, as structure.json)."""
    path = structure.save(setup.out / "structures" / f"structure_{progress.step}.json")
    structure.save_alive_counts(setup.out, progress.step)
    progress.reporter.artifact(str(path), "structure")
    if final:
        final_path = structure.save(setup.structure_path)
        progress.reporter.artifact(str(final_path), "structure")
    return Path(path)


def _check_degenerate(
    structure: Structure, seed_cost: float, strength: float, progress: Progress
) -> None:
    fraction = structure.learned_cost / seed_cost if seed_cost else 1.0
    message = None
    if structure.learned_cost <= 0 or all(s.alive == 0 for s in structure.layers.values()):
        message = (
            f"the learned {structure.cost_name} collapsed to {structure.learned_cost:g}: the "
            f"strength {strength:.3g} is too high; try about 10x lower"
        )
    elif fraction >= 0.98:
        message = (
            f"nothing shrank ({structure.cost_name} is {fraction:.1%} of the seed's): the "
            f"strength {strength:.3g} is too low; try 10x-100x higher"
        )
    if message:
        progress.warn(message)


def rebuild(setup: Setup, progress: Progress, learned: Learned) -> Any:
    """The seed model at the learned widths, as its predicted cost describes it: fresh weights,
    or (``retrain_init: kept``) the surviving channels' learned ones."""
    from .morphnet.keras3.backend import set_random_seed
    from .morphnet.widths import rebuild_structure

    # the rebuilt network's initial weights depend on the seed only, not on the learning run
    set_random_seed(setup.config.seed + 1)
    structure = learned.structure
    _, min_channels = rebuild_structure(setup.seed_graph, structure)
    if min_channels:
        dead = sorted(n for n, s in structure.layers.items() if s.alive == 0)
        progress.warn(
            f"layers pruned to zero cut the network ({dead[:5]}): the rebuild keeps "
            f"{min_channels} channel in each, as the predicted cost counts"
        )
    source = _weights_source(setup, learned)
    keep = setup.config.retrain_init == "kept"
    try:
        return _apply(source, structure, min_channels, keep, progress)
    except StructureError as exc:  # the prediction and the rebuild disagree: say so
        progress.warn(
            f"rebuilt with one channel in layers pruned to zero ({exc}); the predicted cost "
            f"does not count them"
        )
        return _apply(source, structure, 1, keep, progress)


def _weights_source(setup: Setup, learned: Learned) -> Any:
    """The network whose surviving channels ``retrain_init: kept`` keeps: the one learned on,
    its gates folded away (FiGS), else the seed (a resumed retrain restores its own weights)."""
    network = learned.network
    if setup.config.retrain_init != "kept" or network is None:
        return setup.seed_model
    if network is not setup.seed_model:
        from .morphnet.keras3 import remove_gating

        network, _ = remove_gating(network)
    return network


def _apply(source: Any, structure: Structure, floor: int, keep: bool, progress: Progress) -> Any:
    from .morphnet.keras3 import apply_structure

    if keep:
        try:
            return apply_structure(source, structure, keep_weights=True, min_channels=floor)
        except StructureError as exc:
            progress.warn(f"retrain_init: kept fell back to fresh weights: {exc}")
    return apply_structure(source, structure, min_channels=floor)


def retrain(setup: Setup, progress: Progress, learned: Learned, model: Any) -> Retrained:
    """Train the rebuilt ``model`` (going on from the checkpoint).

    Raises:
        TrialFailed: a NaN or infinite loss.
    """
    from .morphnet.keras3.backend import keras

    config = setup.config
    steps = max(1, len(setup.train_ds)) * max(config.retrain_epochs, 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.retrain_learning_rate, decay_steps=steps
    )
    optimizer = keras.optimizers.Adam(schedule)
    compile_for_training(model, optimizer, setup.jit_compile)
    initial = progress.restore(model, optimizer) if progress.resumes(RETRAIN) else 0
    fit = Fit(
        phase=RETRAIN,
        model=model,
        checkpointed=model,
        optimizer=optimizer,
        epochs=config.retrain_epochs,
        initial_epoch=initial,
        strength=learned.strength,
        learned_val_accuracy=learned.learned_val_accuracy,
        initial_term=learned.initial_term,
    )
    return Retrained(model, train(setup, progress, fit))
