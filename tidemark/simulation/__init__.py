"""Synthetic streams for any project: scenarios of phases, each drawing items by laws.

A scenario is a YAML file that names its project and lists phases; each phase gives its count
and, per value of the project's segment, a share and how its items are made: each feature
drawn, then the target by a law, or real rows resampled from a data set. Every name is the
project's; the scenario is checked against the project when loaded (unknown features, draws
or laws that could leave the project's bounds, a segment that is not one of its values…), so
every generated record is one the stream accepts::

    name: salmon-walleye-salmon
    project: fish-weight
    phases:
      - name: salmon
        count: 1500
        segments:
          salmon:
            share: 1.0                                  # relative share of the phase's items
            features:
              length_cm: {mean: 70, sd: 8, min: 50, max: 90}     # normal, clipped to [min, max]
              height_cm: {ratio_of: length_cm, mean: 0.24, sd: 0.012, min: 0.20, max: 0.28}
            target: {law: power, scale: 4.86e-5, exponents: {length_cm: 2.0, height_cm: 1.0},
                     noise_sd: 0.07}

Features are drawn from a clipped normal (``mean, sd, min, max``), as a share of another
number (``ratio_of`` and the share's clipped normal), or among categories with weights
(``choice: {Biscoe: 2, Dream: 1}``). An optional feature not drawn is absent. The target
follows a law:

- ``power``: ``scale * Π feature**exponent * exp(noise_sd * z)``, multiplicative log-normal
  noise (an allometric ``a * L**b * (H/L)**c`` is ``a * L**(b-c) * H**c``);
- ``linear``: ``intercept + Σ coefficient * feature + noise_sd * z``, additive noise in the
  target's unit.

``z`` is standard normal, clipped to ``±NOISE_CLIP_SD``. Instead of drawing, a segment may
replay the real rows of that segment of a data set, each number with relative measurement
noise: ``resample: {data: penguins, noise_sd: 0.01}``, the data set named at the top of the
file, a CSV beside the scenario (``data: {penguins: {file: penguins.csv}}``) or inside an
installed package (``{package: palmerpenguins, path: data/penguins.csv}``). A project without
a segment names its phases' populations freely (they are not written into the records).

A scenario may give its line's pace, ``event_interval_s`` (seconds between two items), which
the simulator uses unless told another rate. The scenarios of a project are the YAML files of
the folder its project file names (``scenarios = "../examples/fish/scenarios"``), each known
by its file name; ``default`` is played when none is named (:mod:`.library`).

Generation is deterministic for a seed (:mod:`.generate`): each phase draws from its own
random stream, and keys are UUIDs derived from the scenario's name, the seed and the index.

Modules: :mod:`.spec` (the file's shape), :mod:`.datasets` (data sets to resample),
:mod:`.scenario` (binding to a project and its checks), :mod:`.draw` (a phase's draws),
:mod:`.generate` (rows, tables, keys, seeds), :mod:`.library` (a project's scenarios).
"""
