"""Text in: the tokenizer (transformers' XLM-R tokenizer over `tokenizers`) and its files."""
from .files import CONFIG_FILE, SPECIAL_FILE, SPECIAL_NAMES, SPM_FILES, TOKENIZER_FILE
from .sentencepiece import read_sentencepiece, xlmr_from_sentencepiece, xlmr_pipeline
from .tokenizer import Tokenizer, XLMRobertaTokenizer, XLMRobertaTokenizerFast

__all__ = ["CONFIG_FILE", "SPECIAL_FILE", "SPECIAL_NAMES", "SPM_FILES", "TOKENIZER_FILE", "Tokenizer",
           "XLMRobertaTokenizer", "XLMRobertaTokenizerFast", "read_sentencepiece", "xlmr_from_sentencepiece",
           "xlmr_pipeline"]
