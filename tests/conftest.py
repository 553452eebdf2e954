"""Every solution the test suite produces through ``solve()`` is re-checked by the independent
checker (``solver.check``): ``solve()`` raises ``SelfCheckError`` when a claim does not hold."""

import os

from solver.solve import SELF_CHECK_ENV

os.environ[SELF_CHECK_ENV] = "1"
