"""`python -m bench.gate`: the CI regression gate against the committed baseline."""
import sys

from bench.gate.baseline import main

sys.exit(main())
