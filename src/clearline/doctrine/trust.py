"""How far a side trusts the counterpart's answers, learned from what its own sensors later show.

A Beta(truthful, lying) belief over "the next answer is true". An answer later
confirmed by one's own sensors adds one to `truthful`; one refuted adds
`lie_weight` to `lying`, because a caught lie is stronger evidence than a kept
promise. Pure: the caller decides when a confirmation arrives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TrustModel:
    truthful: float = 9.0
    lying: float = 1.0
    lie_weight: float = 5.0

    def __post_init__(self) -> None:
        if self.truthful <= 0 or self.lying <= 0:
            raise ValueError(
                f"trust prior needs positive counts, got truthful={self.truthful}, "
                f"lying={self.lying}"
            )
        if self.lie_weight <= 0:
            raise ValueError(f"lie_weight must be positive, got {self.lie_weight}")

    @property
    def trust(self) -> float:
        """Posterior mean probability that the next answer is true."""
        return self.truthful / (self.truthful + self.lying)

    def confirmed(self) -> None:
        self.truthful += 1.0

    def refuted(self) -> None:
        self.lying += self.lie_weight
