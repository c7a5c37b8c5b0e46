"""How the loop benchmark judges the guard: was the version it kept the better one?"""

from __future__ import annotations

#: Scores this close count as a tie (right either way): the guard's own tolerance, and the loop's "no drop > 0.01"
#: (a round at most 0.01 worse is as good as the last).
TIES = (0.005, 0.01)
#: The record key of a round's new-minus-old mean IU on the person's own working images outside the reviewed regions.
WORKING = "working_delta_new_minus_old"


def guard_right(accepted: bool, delta: float, tie: float) -> bool:
    """Whether the guard kept the better version: ``delta`` = score of the new version − its parent's; differences
    of at most ``tie`` count as right either way."""
    return bool((accepted and delta >= -tie) or (not accepted and delta <= tie))
