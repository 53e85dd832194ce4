"""Judging: every rule that decides whether a version serves, as pure logic.

On held-out items, when a retrain (or ``promote``) judges a candidate against production:

- ``holdout``: how many rows it takes to train and to judge, and which are held out;
- ``promotion``: the paired test and the margin (``decide``);
- ``candidate``: what becomes of the candidate: the emergency path, shadow when it is not
  worse but not proven better, the record only otherwise; a promotion forced by hand.

On live items, while a version runs in shadow beside production:

- ``sequential``: the always-valid sequential test of a paired difference;
- ``shadow``: the shadow evaluation, its verdicts, and the rollback rule.

And ``decisions`` (what was decided, with its reason) and ``tags`` (a judgement as the
registry keeps it). The flows and the monitor carry the rulings out and decide nothing.
Nothing is imported here, so that a service loads only the rules it uses.
"""
