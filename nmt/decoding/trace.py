"""A recording of beam search, step by step, for drawing it as a tree.

Pass a ``BeamTrace`` as the ``observer`` of ``Translator.translate_nbest`` (or of
nmt.decoding.search.beam_search): it keeps, per sentence, every step's candidates, each with the
beam it extends (its parent: an index into the previous step's kept beams), its token and its
log P, sorted into kept (the open beams), ended (finished by EOS or at the length limit) and
pruned (among the 2k best, but neither). A node of the tree is (step, index in ``kept``);
an edge runs from (step - 1, parent) to it. Under a glossary each step also holds ``terms``: per
candidate, the glossary tokens its hypothesis holds (the constrained search's bank), so a node
holding more than its parent shows where the glossary steered the search. Nothing is recorded,
and nothing costs, without an observer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nmt.decoding.search import BeamStep


@dataclass
class BeamTrace:
    """Every BeamStep of the searches it observes, per sentence, in step order."""

    steps: dict[int, list[BeamStep]] = field(default_factory=dict)

    def __call__(self, step: BeamStep) -> None:
        self.steps.setdefault(step.sentence, []).append(step)

    def paths(self, sentence: int, eos_id: int) -> list[tuple[list[int], float]]:
        """Every hypothesis the search of ``sentence`` finished, as (tokens without EOS,
        log P), rebuilt from the parent links alone: what the tree's leaves spell."""
        found = []
        history: list[list[int]] = [[]]  # tokens of each open beam, in kept order
        for step in self.steps.get(sentence, []):
            for parent, token, log_prob in step.ended:
                # An EOS ends a hypothesis; any other token ended it at the length limit.
                tail = [] if token == eos_id else [token]
                found.append(([*history[parent], *tail], log_prob))
            history = [[*history[parent], token] for parent, token, _ in step.kept]
        return found
