import os
import sys

# tests/toy_modules.py is shared by several test files.
sys.path.insert(0, os.path.dirname(__file__))
