"""``python -m experiments.long_range``: see main.py and config.py."""

from absl import flags

from experiments import launch
from experiments.long_range import main as long_range_main

# So that --help lists --workdir, --config and the distributed flags
# (launch.training_binary defines them all).
flags.adopt_module_key_flags(launch)

long_range_main.main()
