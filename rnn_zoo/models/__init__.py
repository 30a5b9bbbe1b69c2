"""Models built from the zoo's modules."""

from rnn_zoo.models.captioner import Captioner
from rnn_zoo.models.char_lm import CharLM
from rnn_zoo.models.sequence import SequenceModel
from rnn_zoo.models.vqa import VQA

__all__ = ["Captioner", "CharLM", "SequenceModel", "VQA"]
