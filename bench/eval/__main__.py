"""`python -m bench.eval`: see bench/eval/harness.py and docs/EVALUATING_MODELS.md."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.eval.harness import main  # noqa: E402

sys.exit(main())
