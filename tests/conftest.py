import os

from hypothesis import HealthCheck, settings

# Gradient checks evaluate the function twice per input element: no per-example deadline.
settings.register_profile(
    "default", deadline=None, max_examples=int(os.environ.get("TG_HYPOTHESIS_EXAMPLES", 100)),
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")
