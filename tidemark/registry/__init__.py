"""The model registry's contract, in one place.

- ``writer``: register, promote, roll back and put in shadow, with MLflow (the flows);
- ``reader``: what a serving process reads, over MLflow's REST API, without importing MLflow;
- ``tagger``: the tags a serving process writes on a version (the shadow verdicts), over REST;
- ``notes``: the Markdown a version and the model carry, saying why each version exists;
- ``watcher``: follows the production alias and swaps the served model (scorers, API, monitor).

Nothing is imported here, so that reading the registry never loads MLflow.
"""
