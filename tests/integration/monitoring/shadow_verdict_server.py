"""The real ``shadow-verdict`` flow served alone for the shadow tests (run as a script).

The full ``flows.serve`` would also serve ``retrain/retrain``, whose runs other monitoring tests
count; this serves only the deployment the shadow tests need, with the flow's own code.
"""

from flows.shadow import shadow_verdict
from tidemark.orchestration import SHADOW_VERDICT_FLOW

if __name__ == "__main__":
    shadow_verdict.serve(name=SHADOW_VERDICT_FLOW)
