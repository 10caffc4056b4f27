"""VideoMAE: our names -> transformers' (legacy layout, which save_pretrained writes)."""
import re

from .convert import Converter, vit_embedding_rules, vit_layer_rules

_QKV_BIAS = re.compile(r"attention\.attention\.(query|key|value)\.bias$")


def _named_biases(state: dict) -> dict:
    """Some transformers 5 releases wrote VideoMAE's q/v biases as ``query.bias``/``value.bias`` with
    an all-zero ``key.bias``: read them as ``q_bias``/``v_bias``. A non-zero key bias is kept, so the
    load report names it as unexpected instead of dropping weights. A meta tensor (a shape from a
    file header, checked before loading) counts as zero; the real load decides."""
    out = {}
    for key, value in state.items():
        m = _QKV_BIAS.search(key)
        if m is None or (m[1] == "key" and not value.is_meta and value.count_nonzero()):
            out[key] = value
        elif m[1] != "key":
            out[key[: m.start()] + f"attention.attention.{m[1][0]}_bias"] = value
    return out


CONVERTER = Converter(
    [
        *vit_layer_rules(r"decoder\.blocks", "decoder.decoder_layers"),
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        *vit_embedding_rules(),
        (r"decoder\.norm\.(weight|bias)", r"decoder.norm.\1"),  # keeps its name; listed before the backbone's
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ],
    normalise=_named_biases,
    # transformers 5's modules hold the q/v biases as the query/value Linear's bias (the key has none)
    memory=[("attention.attention.q_bias", "attention.attention.query.bias"),
            ("attention.attention.v_bias", "attention.attention.value.bias")],
)
