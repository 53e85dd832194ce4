"""Synthetic streams for any project: scenarios of phases, each drawing items by laws.

A scenario is a YAML file that names its project and lists phases; each phase gives its count
and, per value of the project's segment, a share and how its items are made: each feature
drawn, then the target by a law, or real rows resampled from a data set. Every name is the
project's; the scenario is checked against the project when loaded (unknown features, draws
or laws that could leave the project's bounds, a segment that is not one of its values…), so
every generated record is one the stream accepts::

    name: rye-and-spelt
    project: bakery-loaf
    data:
      loaves: {file: loaves.csv}                        # a CSV beside the scenario
    phases:
      - name: morning
        count: 1500
        segments:
          rye:
            share: 3.0                                  # relative share of the phase's items
            features:
              dough_g: {mean: 800, sd: 60, min: 600, max: 1000}  # normal, clipped to [min, max]
              crust_g: {ratio_of: dough_g, mean: 0.2, sd: 0.02, min: 0.15, max: 0.25}
              oven: {choice: {north: 3, south: 1}}
            target: {law: power, scale: 0.9, exponents: {dough_g: 1.0}, noise_sd: 0.05}
          spelt:
            share: 1.0
            resample: {data: loaves, noise_sd: 0.01}    # real spelt loaves, remeasured

Features are drawn from a clipped normal (``mean, sd, min, max``), as a share of another
number (``ratio_of`` and the share's clipped normal), or among categories with weights
(``choice: {north: 3, south: 1}``). An optional feature not drawn is absent. The target
follows a law:

- ``power``: ``scale * Π feature**exponent * exp(noise_sd * z)``, multiplicative log-normal
  noise (an allometric ``a * L**b * (H/L)**c`` is ``a * L**(b-c) * H**c``);
- ``linear``: ``intercept + Σ coefficient * feature + noise_sd * z``, additive noise in the
  target's unit.

``z`` is standard normal, clipped to ``±NOISE_CLIP_SD``. Instead of drawing, a segment may
replay the real rows of that segment of a data set, each number with relative measurement
noise (``resample``): the data set is named at the top of the file, a CSV beside the scenario
or inside an installed package (``{package: bakery_data, path: data/loaves.csv}``). A project
without a segment names its phases' populations freely (they are not written into the records).

A scenario may give its line's pace, ``event_interval_s`` (seconds between two items), which
the simulator uses unless told another rate. The scenarios of a project are the YAML files of
the folder its project file names (``scenarios = "../examples/bakery/scenarios"``), each known
by its file name; ``default`` is played when none is named (:mod:`.library`).

Generation is deterministic for a seed (:mod:`.generate`): each phase draws from its own
random stream, and keys are UUIDs derived from the scenario's name, the seed and the index.

Modules: :mod:`.spec` (the file's shape), :mod:`.datasets` (data sets to resample),
:mod:`.scenario` (binding to a project and its checks), :mod:`.draw` (a phase's draws),
:mod:`.generate` (rows, tables, keys, seeds), :mod:`.library` (a project's scenarios).
"""
