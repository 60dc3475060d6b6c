"""How a page's new proposal differs from its previous one (after the model is re-run on a worklist)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..results import Signals

#: A page changed when its signals moved by more than this on average (mV; 0.1 mm at 10 mm/mV)...
CHANGE_MV = 0.01
#: ...or when more than this share of its samples was found by only one of the two proposals.
CHANGE_COVERAGE = 0.01


@dataclass(frozen=True)
class ProposalChange:
    """How a page's new proposal differs from its previous one.

    Attributes
    ----------
    mean_abs_mv : float
        Mean ``|new - old|`` in mV over the samples finite in both (NaN when none are).
    max_lead : str
        The lead that moved most ("" when none compare).
    max_lead_mv : float
        That lead's mean ``|new - old|`` in mV.
    coverage : float
        Share of the samples, finite in either proposal, that only one of them has.
    first : bool
        The page had no proposal before (nothing to compare with).
    """

    mean_abs_mv: float = math.nan
    max_lead: str = ""
    max_lead_mv: float = math.nan
    coverage: float = 0.0
    first: bool = False

    @property
    def changed(self) -> bool:
        if self.first:
            return False
        return bool(self.mean_abs_mv > CHANGE_MV) or self.coverage > CHANGE_COVERAGE

    @property
    def size(self) -> float:
        """A number to rank changes by (mV; coverage counts as 1 mV per 100 %)."""
        if self.first:
            return -1.0
        return (0.0 if math.isnan(self.mean_abs_mv) else self.mean_abs_mv) + self.coverage

    def describe(self) -> str:
        if self.first:
            return "first proposal for this page (nothing to compare with)"
        if math.isnan(self.mean_abs_mv):
            mean = "no samples found by both proposals"
        else:
            mean = f"mean |new - old| {self.mean_abs_mv:.3f} mV"
            if self.max_lead:
                mean += f", most in {self.max_lead} ({self.max_lead_mv:.3f} mV)"
        verdict = "changed" if self.changed else "unchanged"
        return f"{verdict}: {mean}; {100 * self.coverage:.1f} % of samples found by only one of them"


def proposal_change(old: Signals | None, new: Signals) -> ProposalChange:
    """Compare a page's new signals with its previous proposal, lead by lead (by name).

    Parameters
    ----------
    old : Signals or None
        The previous proposal (None: the page had none).
    new : Signals
        The new proposal; resampled onto ``old``'s time base when the rates differ.

    Returns
    -------
    ProposalChange
    """
    if old is None:
        return ProposalChange(first=True)
    t_old = np.arange(old.n_samples) / old.fs
    t_new = np.arange(new.n_samples) / new.fs
    total = differ = both_n = 0
    both_sum = 0.0
    per_lead: dict[str, float] = {}
    for lead in dict.fromkeys(old.lead_names + new.lead_names):
        a = old.mv[:, old.lead_names.index(lead)] if lead in old.lead_names else np.full(old.n_samples, np.nan)
        if lead in new.lead_names:
            b = new.mv[:, new.lead_names.index(lead)]
            if new.fs != old.fs:
                ok = np.isfinite(b)
                b = np.interp(t_old, t_new, np.where(ok, b, 0.0), left=np.nan, right=np.nan)
                near = np.interp(t_old, t_new, ok.astype(float), left=0.0, right=0.0)
                b[near < 1.0] = np.nan  # no value where a neighbour was missing
        else:
            b = np.full(0, np.nan)
        n = max(len(a), len(b))
        a = np.pad(a.astype(float), (0, n - len(a)), constant_values=np.nan)
        b = np.pad(b.astype(float), (0, n - len(b)), constant_values=np.nan)
        fa, fb = np.isfinite(a), np.isfinite(b)
        both = fa & fb
        total += int((fa | fb).sum())
        differ += int((fa ^ fb).sum())
        if both.any():
            d = np.abs(a[both] - b[both])
            per_lead[lead] = float(d.mean())
            both_sum += float(d.sum())
            both_n += int(both.sum())
    mean = both_sum / both_n if both_n else math.nan
    lead = max(per_lead, key=per_lead.__getitem__) if per_lead else ""
    return ProposalChange(mean, lead, per_lead.get(lead, math.nan), differ / total if total else 0.0)
