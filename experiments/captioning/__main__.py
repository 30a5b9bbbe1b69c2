"""``python -m experiments.captioning``: see main.py and config.py."""

from absl import flags

from experiments import launch
from experiments.captioning import main as captioning_main

# So that --help lists --workdir, --config and the distributed flags
# (launch.training_binary defines them all).
flags.adopt_module_key_flags(launch)

captioning_main.main()
