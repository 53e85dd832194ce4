"""A project's model: built, trained, judged and served from the project file alone.

Every name comes from a :class:`tidemark.project.spec.Project` (its features, segment and
target); nothing here knows a domain. The modules, by job:

- ``frames``: the tables the model reads (checks naming bad columns and rows, the model's
  input frame, a frame from the loop's items or from dict records);
- ``default``: the platform's default model (ridge with per-segment partial pooling, in log
  space for a positive target) and what a fitted one knows (its segments and levels);
- ``factory``: the user's model, ``module:function`` in the project file;
- ``storage``: whether a fitted model can be stored and loaded without running code (skops'
  trusted types);
- ``training``: build, train, predict, evaluate, per-item judged errors;
- ``metrics``, ``predictions``, ``fingerprint``: what training and prediction return;
- ``fast``: a default model's fast form, the same answers without the pipeline's cost.
"""
