"""bench: a benchmark harness for image similarity search (embedding models x Milvus indexes)."""
from pathlib import Path

# The checkout: conf/, models/ and reports/ are found from here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
