"""The benchmark harness: suites (TOML), the runner, the results schema, reports and plots."""

from .failures import RowsFailed  # noqa: F401
from .runner import run_suite  # noqa: F401
from .schema import SCHEMA_VERSION, SchemaError, validate  # noqa: F401
from .suite import Suite, Variant, adhoc_suite, find_suite, load_suite  # noqa: F401
