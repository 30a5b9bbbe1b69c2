"""``python -m experiments.char_rnn``: see main.py and config.py."""

from absl import flags

from experiments import launch
from experiments.char_rnn import main as char_rnn_main

# So that --help lists --workdir, --config and the distributed flags
# (launch.training_binary defines them all).
flags.adopt_module_key_flags(launch)

char_rnn_main.main()
