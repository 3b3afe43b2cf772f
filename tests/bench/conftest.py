from __future__ import annotations

import sys
from pathlib import Path

# The misbehaving server lives beside these tests; the shared harness one level up (tests/conftest.py adds it).
sys.path.insert(0, str(Path(__file__).resolve().parent))
